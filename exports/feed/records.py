"""Reading the feed: audit-chain rows of the registered event types after a cursor, as NDJSON records.

The cursor is the audit chain's ``sequence``. It is assigned under the chain-head row lock, which is held until the
appending transaction commits, so sequences become visible strictly in order: a reader that has seen sequence n has
seen every committed row before it, and a later read can never turn up a smaller one. Each batch is one indexed
range query (``sequence > cursor ORDER BY sequence LIMIT n``), so no snapshot is held across batches and memory
stays flat whatever the backlog.
"""

from __future__ import annotations

import json
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
# The database returns each value already as JSON text where that is cheap for it (payload, the stage's name and
# role straight from the JSON payload, the timestamp in its final form); Python puts the record together from those
# pieces and from JSON it encoded once per batch (types, categories, team slugs), so no value is parsed and
# re-encoded per row.
_DIALECTS = {
    "postgresql": {
        "json_field": "(ae.payload -> '{key}')::text",
        "integer": "CASE WHEN jsonb_typeof(ae.payload -> '{key}') = 'number' THEN (ae.payload ->> '{key}')::bigint END",
        "payload": "ae.payload::text",
        "created_at": _PG_TIMESTAMP,
        "id_of": "CASE WHEN ae.object_type = %s THEN ae.object_id::bigint END",
    },
    "sqlite": {
        "json_field": "json_quote(json_extract(ae.payload, '$.{key}'))",
        "integer": (
            "CASE WHEN json_type(ae.payload, '$.{key}') = 'integer' THEN json_extract(ae.payload, '$.{key}') END"
        ),
        "payload": "json(ae.payload)",
        "created_at": "replace(ae.created_at, ' ', 'T') || 'Z'",
        "id_of": "CASE WHEN ae.object_type = %s THEN CAST(ae.object_id AS integer) END",
    },
}


def _dialect() -> dict[str, str]:
    return _DIALECTS["postgresql" if connection.vendor == "postgresql" else "sqlite"]


def _select(types: list[str], where: str) -> tuple[str, list]:
    """Feed rows matching ``where`` (on ``ae``), in sequence order: sequence, action, export id, execution id, team
    slug, and the stage, role, payload and timestamp as JSON text."""
    d = _dialect()
    quote = connection.ops.quote_name
    export_id = f"COALESCE({d['id_of']}, {d['integer'].format(key='export_id')})"
    execution_id = f"COALESCE(ex.execution_id, {d['id_of']}, {d['integer'].format(key='execution_id')})"
    sql = (
        f"SELECT ae.sequence, ae.action, ex.id, {execution_id}, tm.slug, "  # noqa: S608 - fixed names
        f"{d['json_field'].format(key='stage_name')}, {d['json_field'].format(key='required_role')}, "
        f"{d['payload']}, {d['created_at']} "
        f"FROM {quote(AuditEvent._meta.db_table)} ae "
        f"LEFT JOIN {quote(NarrativeExport._meta.db_table)} ex ON ex.id = {export_id} "
        f"LEFT JOIN {quote(Team._meta.db_table)} tm ON tm.id = ae.team_id "
        f"WHERE ae.action IN ({', '.join(['%s'] * len(types))}) AND {where} ORDER BY ae.sequence"
    )
    return sql, [EXECUTION_OBJECT, EXPORT_OBJECT, *types]


def _json_string(value: str | None) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def _records(rows: list[tuple], categories: dict[str, str]) -> list[FeedRecord]:
    kinds = {action: (_json_string(action), _json_string(category)) for action, category in categories.items()}
    teams: dict[str | None, str] = {}
    records = []
    for sequence, action, export_id, execution_id, team, stage, role, payload, created_at in rows:
        kind, category = kinds[action]
        slug = teams.get(team)
        if slug is None:
            slug = teams[team] = _json_string(team)
        records.append(
            FeedRecord(
                sequence,
                f'{{"record_id":"audit-{sequence}","sequence":{sequence},"type":{kind},"category":{category},'
                f'"export_id":{"null" if export_id is None else export_id},'
                f'"execution_id":{"null" if execution_id is None else execution_id},"team":{slug},'
                f'"stage":{stage or "null"},"role":{role or "null"},"payload":{payload},'
                f'"created_at":"{created_at}"}}'.encode(),
            )
        )
    return records


def feed_records_after(*, cursor: int, limit: int, until: int | None = None) -> list[FeedRecord]:
    """Up to ``limit`` feed records with a sequence above ``cursor`` (and at most ``until``), in sequence order."""
    categories = feed_event_types()
    if not categories or limit <= 0:
        return []
    bounds, params = "ae.sequence > %s", [cursor]
    if until is not None:
        bounds, params = "ae.sequence > %s AND ae.sequence <= %s", [cursor, until]
    sql, select_params = _select(sorted(categories), bounds)
    with connection.cursor() as db:
        db.execute(f"{sql} LIMIT %s", [*select_params, *params, limit])
        return _records(db.fetchall(), categories)


def feed_lag(*, cursor: int) -> FeedLag:
    """Registered events not yet exported past ``cursor`` and the oldest one's time."""
    types = list(feed_event_types())
    if not types:
        return FeedLag(0, None)
    figures = AuditEvent.objects.filter(sequence__gt=cursor, action__in=types).aggregate(
        events=Count("id"), oldest=Min("created_at")
    )
    return FeedLag(figures["events"], figures["oldest"])
