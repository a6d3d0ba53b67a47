"""Reading the feed: audit-chain rows of the registered event types after a cursor, as NDJSON records.

The cursor is the audit chain's ``sequence``. It is assigned under the chain-head row lock, which is held until the
appending transaction commits, so sequences become visible strictly in order: a reader that has seen sequence n has
seen every committed row before it, and a later read can never turn up a smaller one. Each batch is one indexed
range query (``sequence > cursor ORDER BY sequence LIMIT n``), so no snapshot is held across batches and memory
stays flat whatever the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, Min
from django.utils import timezone

from exports.models import NarrativeExport
from governance.feed_registry import feed_event_types
from governance.models import AuditEvent, Team

EXPORT_OBJECT = NarrativeExport._meta.label_lower
EXECUTION_OBJECT = "exports.execution"


@dataclass(frozen=True, slots=True)
class FeedRecord:
    sequence: int
    data: bytes  # one JSON object, no trailing newline


@dataclass(frozen=True)
class FeedLag:
    events: int
    oldest_at: datetime | None

    @property
    def oldest_age_seconds(self) -> float | None:
        return None if self.oldest_at is None else max(0.0, (timezone.now() - self.oldest_at).total_seconds())


_PG_TIMESTAMP = "to_char(ae.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
# Each record is built by the database as one JSON object, so Python only hands the text on. PostgreSQL writes it
# by concatenation (each text value through ``to_json``, which escapes it; cheaper per row than
# ``json_build_object``), SQLite with ``json_object``.
_DIALECTS = {
    "postgresql": {
        "field": "ae.payload -> '{key}'",
        "integer": "CASE WHEN jsonb_typeof(ae.payload -> '{key}') = 'number' THEN (ae.payload ->> '{key}')::bigint END",
        "payload": "ae.payload",
        "created_at": _PG_TIMESTAMP,
        "id_of": "CASE WHEN ae.object_type = %s THEN ae.object_id::bigint END",
    },
    "sqlite": {
        "field": "json_extract(ae.payload, '$.{key}')",
        "integer": (
            "CASE WHEN json_type(ae.payload, '$.{key}') = 'integer' THEN json_extract(ae.payload, '$.{key}') END"
        ),
        "payload": "json(ae.payload)",
        "created_at": "replace(ae.created_at, ' ', 'T') || 'Z'",
        "id_of": "CASE WHEN ae.object_type = %s THEN CAST(ae.object_id AS integer) END",
    },
}
# How PostgreSQL renders a value of each kind as JSON text.
_PG_JSON = {"text": "to_json({})::text", "number": "({})::text", "json": "({})::text"}


def _dialect() -> dict[str, str]:
    return _DIALECTS["postgresql" if connection.vendor == "postgresql" else "sqlite"]


def _record(fields: list[tuple[str, str, str]]) -> str:
    """The SQL expression of one record's JSON text from ``(name, kind, expression)`` fields, in that order."""
    if connection.vendor != "postgresql":
        pairs = ", ".join(f"'{name}', {expression}" for name, _, expression in fields)
        return f"json_object({pairs})"
    parts = []
    for index, (name, kind, expression) in enumerate(fields):
        opening = "," if index else "{"
        value = _PG_JSON[kind].format(expression)
        parts.append(f"'{opening}\"{name}\":' || COALESCE({value}, 'null')")
    return " || ".join(parts) + " || '}'"


def _select(categories: dict[str, str], where: str) -> tuple[str, list]:
    """``(sequence, record JSON)`` of feed rows matching ``where`` (on ``ae``), in sequence order."""
    d = _dialect()
    quote = connection.ops.quote_name
    export_id = f"COALESCE({d['id_of']}, {d['integer'].format(key='export_id')})"
    record = _record(
        [
            ("record_id", "text", "'audit-' || ae.sequence"),
            ("sequence", "number", "ae.sequence"),
            ("type", "text", "ae.action"),
            ("category", "text", "feed_types.category"),
            ("export_id", "number", "ex.id"),
            (
                "execution_id",
                "number",
                f"COALESCE(ex.execution_id, {d['id_of']}, {d['integer'].format(key='execution_id')})",
            ),
            ("team", "text", "tm.slug"),
            ("stage", "json", d["field"].format(key="stage_name")),
            ("role", "json", d["field"].format(key="required_role")),
            ("payload", "json", d["payload"]),
            ("created_at", "text", d["created_at"]),
        ]
    )
    types = ", ".join(["(%s, %s)"] * len(categories))
    sql = (
        f"WITH feed_types (action, category) AS (VALUES {types}) "  # noqa: S608 - fixed names; values are parameters
        f"SELECT ae.sequence, {record} "
        f"FROM {quote(AuditEvent._meta.db_table)} ae "
        "JOIN feed_types ON feed_types.action = ae.action "
        f"LEFT JOIN {quote(NarrativeExport._meta.db_table)} ex ON ex.id = {export_id} "
        f"LEFT JOIN {quote(Team._meta.db_table)} tm ON tm.id = ae.team_id "
        f"WHERE {where} ORDER BY ae.sequence"
    )
    pairs = [value for action in sorted(categories) for value in (action, categories[action])]
    return sql, [*pairs, EXECUTION_OBJECT, EXPORT_OBJECT]


def feed_records_after(*, cursor: int, limit: int, until: int | None = None) -> list[FeedRecord]:
    """Up to ``limit`` feed records with a sequence above ``cursor`` (and at most ``until``), in sequence order."""
    categories = feed_event_types()
    if not categories or limit <= 0:
        return []
    bounds, params = "ae.sequence > %s", [cursor]
    if until is not None:
        bounds, params = "ae.sequence > %s AND ae.sequence <= %s", [cursor, until]
    sql, select_params = _select(categories, bounds)
    with connection.cursor() as db:
        db.execute(f"{sql} LIMIT %s", [*select_params, *params, limit])
        return [FeedRecord(sequence, record.encode()) for sequence, record in db.fetchall()]


def feed_lag(*, cursor: int) -> FeedLag:
    """Registered events not yet exported past ``cursor`` and the oldest one's time."""
    types = list(feed_event_types())
    if not types:
        return FeedLag(0, None)
    figures = AuditEvent.objects.filter(sequence__gt=cursor, action__in=types).aggregate(
        events=Count("id"), oldest=Min("created_at")
    )
    return FeedLag(figures["events"], figures["oldest"])
