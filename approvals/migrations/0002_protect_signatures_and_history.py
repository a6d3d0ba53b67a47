from django.db import migrations

# Signatures are never deleted (a reset marks them superseded) and history rows are never changed or deleted.
PROTECT = """
CREATE OR REPLACE FUNCTION approvals_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER approvals_approvalsignature_never_deleted
    BEFORE DELETE ON approvals_approvalsignature
    FOR EACH ROW EXECUTE FUNCTION approvals_refuse_change();
CREATE TRIGGER approvals_approvalhistory_append_only
    BEFORE UPDATE OR DELETE ON approvals_approvalhistory
    FOR EACH ROW EXECUTE FUNCTION approvals_refuse_change();
"""

UNPROTECT = """
DROP TRIGGER IF EXISTS approvals_approvalsignature_never_deleted ON approvals_approvalsignature;
DROP TRIGGER IF EXISTS approvals_approvalhistory_append_only ON approvals_approvalhistory;
DROP FUNCTION IF EXISTS approvals_refuse_change();
"""


def protect(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PROTECT)


def unprotect(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNPROTECT)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0001_initial")]

    operations = [migrations.RunPython(protect, unprotect)]
