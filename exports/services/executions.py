"""Writes for executions and their append-only timeline."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from config.errors import ValidationFailed
from exports.choices import RESERVED_EVENT_PREFIXES, ExecutionStatus
from exports.events import EventType
from exports.models import Execution, ExecutionEvent
from governance.models import Team
from governance.services.audit import audit_record, canonical_json
from governance.services.outbox import team_state_announce


@dataclass(frozen=True)
class EventInput:
    event_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None


@transaction.atomic
def execution_create(*, team: Team, title: str, owner, protocol_template_key: str = "") -> Execution:
    now = timezone.now()
    execution = Execution.objects.create(
        team=team,
        title=title,
        owner=owner,
        protocol_template_key=protocol_template_key,
        status=ExecutionStatus.RUNNING,
        started_at=now,
    )
    audit_record(
        action=EventType.EXECUTION_CREATED,
        actor=owner,
        obj=execution,
        team_id=team.pk,
        payload={"title": title, "protocol_template": protocol_template_key},
    )
    return execution


def _check_client_event_types(events: Sequence[EventInput]) -> None:
    reserved = sorted({e.event_type for e in events if e.event_type.startswith(RESERVED_EVENT_PREFIXES)})
    if reserved:
        raise ValidationFailed(
            "These event types are written by the server and cannot be appended by clients.",
            code="reserved_event_type",
            details={"event_type": reserved},
        )


@transaction.atomic
def events_append(*, execution: Execution, actor, events: Sequence[EventInput]) -> list[ExecutionEvent]:
    """Append client events to an execution's timeline (one audit row for the batch)."""
    if not events:
        raise ValidationFailed("Send at least one event.", details={"events": ["This list may not be empty."]})
    _check_client_event_types(events)
    rows = timeline_append(execution=execution, actor=actor, events=events)
    audit_record(
        action=EventType.EXECUTION_EVENTS_APPENDED,
        actor=actor,
        obj=execution,
        team_id=execution.team_id,
        payload={"count": len(rows), "first_sequence": rows[0].sequence, "last_sequence": rows[-1].sequence},
    )
    return rows


def timeline_append(*, execution: Execution, actor, events: Sequence[EventInput]) -> list[ExecutionEvent]:
    """Assign sequences under the execution's row lock and insert the events.

    The lock on the execution row serializes appenders, so sequences are gap-free and strictly increasing per
    execution however many writers there are. Callers must already be inside a transaction.
    """
    locked = Execution.objects.select_for_update().only("id", "last_sequence", "team_id").get(pk=execution.pk)
    now = timezone.now()
    start = locked.last_sequence
    actor_id = getattr(actor, "pk", None)
    texts = [canonical_json(event.payload or {}) for event in events]
    rows = [
        ExecutionEvent(
            execution_id=locked.pk,
            sequence=start + offset,
            event_type=event.event_type,
            actor_id=actor_id,
            payload=json.loads(text),
            occurred_at=event.occurred_at or now,
            recorded_at=now,
        )
        for offset, (event, text) in enumerate(zip(events, texts, strict=True), start=1)
    ]
    if connection.vendor == "postgresql" and len(rows) >= COPY_THRESHOLD:
        _copy_rows(rows, texts)
    else:
        ExecutionEvent.objects.bulk_create(rows, batch_size=2000)
    if actor is not None:
        for row in rows:
            row.actor = actor
    last = start + len(rows)
    Execution.objects.filter(pk=locked.pk).update(last_sequence=last, updated_at=now)
    execution.last_sequence = last
    team_state_announce(team_id=locked.team_id, execution_id=locked.pk, reason="timeline_appended")
    return rows


# Above this many rows, PostgreSQL's COPY protocol inserts several times faster than multi-row INSERTs.
COPY_THRESHOLD = 200

_COPY_SQL = (
    "COPY exports_executionevent (execution_id, sequence, event_type, actor_id, payload, occurred_at, recorded_at)"
    " FROM STDIN"
)


def _copy_rows(rows: list[ExecutionEvent], texts: list[str]) -> None:
    """Stream rows with COPY, then read back the ids the database gave them (one query)."""
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_SQL) as copy:
        for row, text in zip(rows, texts, strict=True):
            copy.write_row(
                (row.execution_id, row.sequence, row.event_type, row.actor_id, text, row.occurred_at, row.recorded_at)
            )
    ids = dict(
        ExecutionEvent.objects.filter(
            execution_id=rows[0].execution_id, sequence__range=(rows[0].sequence, rows[-1].sequence)
        ).values_list("sequence", "id")
    )
    for row in rows:
        row.pk = ids[row.sequence]


@transaction.atomic(savepoint=False)  # appends only: no savepoint round trips
def execution_event_record(
    *,
    execution: Execution,
    actor,
    event_type: EventType,
    payload: dict[str, Any],
    audit_action: EventType | None = None,
    audit_obj=None,
) -> ExecutionEvent:
    """The one writer of a server-side step: a timeline entry and its audit row (``audit_action``, default the
    event type; about ``audit_obj``, default the execution), the row carrying the entry's sequence."""
    (event,) = timeline_append(execution=execution, actor=actor, events=[EventInput(event_type, payload)])
    audit_record(
        action=audit_action or event_type,
        actor=actor,
        obj=audit_obj if audit_obj is not None else execution,
        team_id=execution.team_id,
        payload={"sequence": event.sequence, **payload},
    )
    return event


def override_record(*, execution: Execution, actor, step: str, field: str, value: Any, reason: str) -> ExecutionEvent:
    return execution_event_record(
        execution=execution,
        actor=actor,
        event_type=EventType.EXECUTION_OVERRIDE,
        payload={"step": step, "field": field, "value": value, "reason": reason},
        audit_action=EventType.EXECUTION_OVERRIDE_RECORDED,
    )


def coaching_note_record(*, execution: Execution, actor, body: str) -> ExecutionEvent:
    return execution_event_record(
        execution=execution,
        actor=actor,
        event_type=EventType.EXECUTION_COACHING_NOTE,
        payload={"body": body},
        audit_action=EventType.EXECUTION_COACHING_NOTE_RECORDED,
    )
