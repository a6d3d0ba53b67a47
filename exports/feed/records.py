"""Reading the feed: audit-chain rows of the registered event types after a cursor, as NDJSON records.

The cursor is the audit chain's ``sequence``. It is assigned under the chain-head row lock, which is held until the
appending transaction commits, so sequences become visible strictly in order: a reader that has seen sequence n has
seen every committed row before it, and a later read can never turn up a smaller one. Each batch is one indexed
range query (``sequence > cursor ORDER BY sequence LIMIT n``), so no snapshot is held across batches and memory
stays flat whatever the backlog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
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
_DIALECTS = {
    "postgresql": {
        "text": "ae.payload ->> '{key}'",
        "integer": "CASE WHEN jsonb_typeof(ae.payload -> '{key}') = 'number' THEN (ae.payload ->> '{key}')::bigint END",
        "payload": "ae.payload::text",
        "created_at": _PG_TIMESTAMP,
        "id_of": "CASE WHEN ae.object_type = %s THEN ae.object_id::bigint END",
    },
    "sqlite": {
        "text": "json_extract(ae.payload, '$.{key}')",
        "integer": (
            "CASE WHEN json_type(ae.payload, '$.{key}') = 'integer' THEN json_extract(ae.payload, '$.{key}') END"
        ),
        "payload": "ae.payload",
        "created_at": "ae.created_at",
        "id_of": "CASE WHEN ae.object_type = %s THEN CAST(ae.object_id AS integer) END",
    },
}


def _dialect() -> dict[str, str]:
    return _DIALECTS["postgresql" if connection.vendor == "postgresql" else "sqlite"]


def _select(types: Sequence[str], where: str) -> tuple[str, list]:
    """The feed's columns for rows matching ``where`` (on ``ae``); params: object types, then the action list."""
    d = _dialect()
    quote = connection.ops.quote_name
    export_id = f"COALESCE({d['id_of']}, {d['integer'].format(key='export_id')})"
    sql = (
        f"SELECT ae.sequence, ae.action, ex.id, COALESCE(ex.execution_id, {d['id_of']}, "  # noqa: S608 - fixed names
        f"{d['integer'].format(key='execution_id')}), tm.slug, {d['text'].format(key='stage_name')}, "
        f"{d['text'].format(key='required_role')}, {d['payload']}, {d['created_at']} "
        f"FROM {quote(AuditEvent._meta.db_table)} ae "
        f"LEFT JOIN {quote(NarrativeExport._meta.db_table)} ex ON ex.id = {export_id} "
        f"LEFT JOIN {quote(Team._meta.db_table)} tm ON tm.id = ae.team_id "
        f"WHERE ae.action IN ({', '.join(['%s'] * len(types))}) AND {where} ORDER BY ae.sequence"
    )
    return sql, [EXECUTION_OBJECT, EXPORT_OBJECT, *types]


def _created_at(value) -> str:
    if isinstance(value, str) and value.endswith("Z"):
        return value
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _records(rows, categories: dict[str, str]) -> list[FeedRecord]:
    dumps, fragment = orjson.dumps, orjson.Fragment
    return [
        FeedRecord(
            sequence,
            dumps(
                {
                    "record_id": f"audit-{sequence}",
                    "sequence": sequence,
                    "type": action,
                    "category": categories[action],
                    "export_id": export_id,
                    "execution_id": execution_id,
                    "team": team,
                    "stage": stage,
                    "role": role,
                    "payload": fragment(payload),
                    "created_at": _created_at(created_at),
                }
            ),
        )
        for sequence, action, export_id, execution_id, team, stage, role, payload, created_at in rows
    ]


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
