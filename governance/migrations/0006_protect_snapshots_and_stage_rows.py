from decimal import Decimal

from django.db import migrations

# Rows that are evidence: PostgreSQL refuses UPDATE and DELETE on them whatever the client (the ORM refuses too).
APPEND_ONLY_TABLES = [
    "execution_narrative_workflow_template_snapshots",
    "governance_template_audit_logs",
    "governance_baseline_events",
]

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION governance_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def trigger_name(table: str) -> str:
    return f"{table}_append_only"


def protect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(REFUSE_FUNCTION)
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {trigger_name(table)} BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION governance_refuse_change()"
        )


def unprotect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger_name(table)} ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS governance_refuse_change()")


def materialize_stage_rows(apps, schema_editor):
    """Give existing templates the inline stage rows the admin edits (their JSON stays authoritative)."""
    WorkflowTemplate = apps.get_model("governance", "WorkflowTemplate")
    WorkflowStageBlueprint = apps.get_model("governance", "WorkflowStageBlueprint")
    Role = apps.get_model("governance", "Role")
    roles = set(Role.objects.values_list("key", flat=True))
    for template in WorkflowTemplate.objects.all():
        rows = []
        for position, stage in enumerate(template.stage_blueprints or [], start=1):
            if not isinstance(stage, dict) or stage.get("required_role") not in roles:
                continue
            rows.append(
                WorkflowStageBlueprint(
                    template_id=template.pk,
                    position=position,
                    name=str(stage.get("name", ""))[:200],
                    required_role_id=stage["required_role"],
                    sla_hours=Decimal(str(stage.get("sla_hours", 0))),
                    meaning=str(stage.get("meaning", ""))[:200],
                )
            )
        WorkflowStageBlueprint.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("governance", "0005_template_curation_and_baselines")]

    operations = [
        migrations.RunPython(protect, unprotect),
        migrations.RunPython(materialize_stage_rows, migrations.RunPython.noop),
    ]
