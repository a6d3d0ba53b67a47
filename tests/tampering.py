"""Change rows behind the application's back, as someone with direct database access could.

Append-only tables are protected by triggers on PostgreSQL; tampering disables the trigger for one statement.
"""

from django.db import connection

AUDIT_TABLE, AUDIT_TRIGGER = "governance_auditevent", "governance_auditevent_append_only"
SNAPSHOT_TABLE = "execution_narrative_workflow_template_snapshots"
SNAPSHOT_TRIGGER = "execution_narrative_workflow_template_snapshots_append_only"


def tamper(table: str, trigger: str, sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # flush deferred FK checks so the table can be altered
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def tamper_snapshot(snapshot_id: int, canonical_json: str) -> None:
    tamper(
        SNAPSHOT_TABLE,
        SNAPSHOT_TRIGGER,
        f"UPDATE {SNAPSHOT_TABLE} SET canonical_json = %s WHERE id = %s",  # noqa: S608 - fixed table name
        [canonical_json, snapshot_id],
    )


def tamper_audit(sql: str, params: list) -> None:
    tamper(AUDIT_TABLE, AUDIT_TRIGGER, sql, params)
