"""A baseline's execution is an id, not a foreign key into the exports app (docs/architecture.md).

The model state already says so (0005). Databases created while it was a foreign key still carry the constraint:
drop it. The column, its values and its index stay as they are; nothing else changes.
"""

from django.db import migrations

TABLE = "governance_baselines"
COLUMN = "execution_id"


def drop_execution_foreign_key(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        # SQLite declares foreign keys in the table definition: rebuilding the table from the model drops it.
        schema_editor._remake_table(apps.get_model("governance", "GovernanceBaseline"))
        return
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    for name, constraint in sorted(constraints.items()):
        if constraint["foreign_key"] and constraint["columns"] == [COLUMN]:
            schema_editor.execute(schema_editor._delete_fk_sql(apps.get_model("governance", "GovernanceBaseline"), name))


class Migration(migrations.Migration):
    dependencies = [("governance", "0013_team_time_zone_and_user_preferences")]

    operations = [migrations.RunPython(drop_execution_foreign_key, migrations.RunPython.noop)]
