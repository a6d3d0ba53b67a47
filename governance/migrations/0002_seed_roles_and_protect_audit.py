from django.db import migrations

ROLES = [
    ("scientist", "Scientist"),
    ("reviewer", "Reviewer"),
    ("qa_approver", "QA approver"),
    ("pi", "Principal investigator"),
    ("operator", "Operator"),
    ("compliance", "Compliance"),
    ("auditor", "Auditor"),
    ("admin", "Administrator"),
]

PROTECT_AUDIT = """
CREATE OR REPLACE FUNCTION governance_auditevent_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'governance_auditevent is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER governance_auditevent_append_only
    BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION governance_auditevent_refuse_change();
"""

UNPROTECT_AUDIT = """
DROP TRIGGER IF EXISTS governance_auditevent_append_only ON governance_auditevent;
DROP FUNCTION IF EXISTS governance_auditevent_refuse_change();
"""


def seed(apps, schema_editor):
    Role = apps.get_model("governance", "Role")
    for key, label in ROLES:
        Role.objects.get_or_create(key=key, defaults={"label": label})
    apps.get_model("governance", "AuditChainHead").objects.get_or_create(pk=1)


def protect(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PROTECT_AUDIT)


def unprotect(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNPROTECT_AUDIT)


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(protect, unprotect),
    ]
