"""One call writes a lifecycle step of a narrative export to both the execution timeline and the audit trail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from exports.events import EventType
from exports.models import Execution, ExecutionEvent, NarrativeExport
from exports.services.executions import execution_event_record
from governance.services.audit import AuditEntry, audit_record_many, normalize_payload
from governance.signals import team_state_changed


def export_lifecycle_record(
    *, export: NarrativeExport, event_type: EventType, actor=None, payload: dict[str, Any] | None = None
) -> ExecutionEvent | None:
    """``event_type`` is one of the lifecycle's event types (``exports.events.EventType``, docs/architecture.md).

    Inside ``lifecycle_batch()`` the record is only collected (and None returned): the batch writes it, in order,
    when the block ends."""
    pending = _pending.get()
    if pending is not None:
        pending.append(LifecycleRecord(export=export, event_type=event_type, actor=actor, payload=payload))
        return None
    return _record_one(export=export, event_type=event_type, actor=actor, payload=payload)


def _record_one(
    *, export: NarrativeExport, event_type: EventType, actor, payload: dict[str, Any] | None
) -> ExecutionEvent:
    body = {"export_id": export.pk, "version": export.version, **(payload or {})}
    return execution_event_record(
        execution=export.execution, actor=actor, event_type=event_type, payload=body, audit_obj=export
    )


@dataclass(frozen=True)
class LifecycleRecord:
    export: NarrativeExport
    event_type: EventType
    actor: Any = None
    payload: dict[str, Any] | None = None


def _reserve_sequences(counts: dict[int, int], *, now) -> dict[int, tuple[int, int]]:
    """Advance each execution's ``last_sequence`` by its count under its row lock (taken in id order, as
    ``timeline_append`` takes them one by one); ``{execution_id: (last sequence before, team_id)}``."""
    if len(counts) == 1:  # the interactive case: lock, advance and read back in one statement
        ((execution_id, count),) = counts.items()
        with connection.cursor() as cursor:
            table = connection.ops.quote_name(Execution._meta.db_table)
            cursor.execute(
                f"UPDATE {table} SET last_sequence = last_sequence + %s, updated_at = %s "  # noqa: S608 - no input
                "WHERE id = %s RETURNING last_sequence, team_id",
                [count, connection.ops.adapt_datetimefield_value(now), execution_id],
            )
            last, team_id = cursor.fetchone()
        return {execution_id: (last - count, team_id)}
    locked = list(
        Execution.objects.select_for_update()
        .only("id", "last_sequence", "team_id")
        .filter(pk__in=counts)
        .order_by("pk")
    )
    reserved = {row.pk: (row.last_sequence, row.team_id) for row in locked}
    for row in locked:
        row.last_sequence, row.updated_at = row.last_sequence + counts[row.pk], now
    Execution.objects.bulk_update(locked, ["last_sequence", "updated_at"], batch_size=5000)
    return reserved


def _append_events_postgresql(
    execution_id: int, placed: Sequence[tuple[int, int, LifecycleRecord, dict[str, Any]]], *, now
) -> tuple[int, int]:
    """Reserve ``len(placed)`` sequences of one execution and insert its events in one statement: the execution
    row is locked by the ``UPDATE``, the events take the sequences after the previous last one, in order. Returns
    (last sequence before, team id), as ``_reserve_sequences`` does."""
    quote = connection.ops.quote_name
    execution, event = quote(Execution._meta.db_table), quote(ExecutionEvent._meta.db_table)
    sql = (
        f"WITH reserved AS (UPDATE {execution} SET last_sequence = last_sequence + %s, updated_at = %s "  # noqa: S608 - no input
        "WHERE id = %s RETURNING last_sequence - %s AS base, team_id), "
        f"appended AS (INSERT INTO {event} (execution_id, sequence, event_type, actor_id, payload, occurred_at, "
        "recorded_at) SELECT %s, reserved.base + e.ord, e.event_type, e.actor_id, e.payload, %s, %s FROM reserved, "
        "unnest(%s::text[], %s::integer[], %s::jsonb[]) WITH ORDINALITY AS e(event_type, actor_id, payload, ord)) "
        "SELECT base, team_id FROM reserved"
    )
    count = len(placed)
    columns: list[list[Any]] = [
        [record.event_type for _, _, record, _ in placed],
        [getattr(record.actor, "pk", None) for _, _, record, _ in placed],
        [Jsonb(normalize_payload(body)) for _, _, _, body in placed],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [count, now, execution_id, count, execution_id, now, now, *columns])
        base, team_id = cursor.fetchone()
    return base, team_id


_pending: ContextVar[list[LifecycleRecord] | None] = ContextVar("export_lifecycle_pending", default=None)


@contextmanager
def lifecycle_batch() -> Iterator[None]:
    """Collect the lifecycle records written inside the block and write them together when it ends.

    Same rows, same order, but the execution and the audit-chain head are locked once, at the end, instead of
    once per record: an interactive action (a signature writes three or four records) then holds the global
    audit lock only for the last moments of its transaction. Use it inside ``transaction.atomic()``. Records
    of a block that raises are dropped with the transaction; a nested block leaves the writing to the outer one.
    """
    if _pending.get() is not None:
        yield
        return
    token = _pending.set([])
    try:
        yield
        records = _pending.get() or []
    finally:
        _pending.reset(token)
    export_lifecycle_record_many(records)


def _append_events_bulk(placed: list, reserved: dict[int, tuple[int, int]], *, now, batch_size: int) -> None:
    """The timeline rows of ``placed`` records, numbered after the sequences ``reserved`` for their executions."""
    events = [
        ExecutionEvent(
            execution_id=execution_id,
            sequence=reserved[execution_id][0] + offset,
            event_type=record.event_type,
            actor_id=getattr(record.actor, "pk", None),
            payload=normalize_payload(body),
            occurred_at=now,
            recorded_at=now,
        )
        for execution_id, offset, record, body in placed
    ]
    ExecutionEvent.objects.bulk_create(events, batch_size=batch_size)


@transaction.atomic(savepoint=False)
def export_lifecycle_record_many(records: Sequence[LifecycleRecord], *, batch_size: int = 5000) -> None:
    """``export_lifecycle_record`` for many exports at once, in a number of queries independent of the count.

    Batch jobs (the SLA monitor) use it. Executions are locked in id order, as ``timeline_append`` would lock
    them one by one, so sequences stay gap-free per execution. ``record.export.execution`` must be loaded.
    """
    if not records:
        return
    by_execution: dict[int, list[LifecycleRecord]] = defaultdict(list)
    for record in records:
        by_execution[record.export.execution_id].append(record)
    now = timezone.now()
    # (execution, sequence offset within its batch, record, event body), executions in id order
    placed = [
        (execution_id, offset, record, {"export_id": record.export.pk, "version": record.export.version,
                                         **(record.payload or {})})
        for execution_id, group in sorted(by_execution.items())
        for offset, record in enumerate(group, start=1)
    ]  # fmt: skip
    if len(by_execution) == 1 and connection.vendor == "postgresql":  # an interactive action: one round trip
        (execution_id,) = by_execution
        reserved = {execution_id: _append_events_postgresql(execution_id, placed, now=now)}
    else:
        reserved = _reserve_sequences({pk: len(group) for pk, group in by_execution.items()}, now=now)
        _append_events_bulk(placed, reserved, now=now, batch_size=batch_size)
    audits = [
        AuditEntry(
            action=record.event_type,
            actor=record.actor,
            obj=record.export,
            team_id=reserved[execution_id][1],
            payload={"sequence": reserved[execution_id][0] + offset, **body},
        )
        for execution_id, offset, record, body in placed
    ]
    audit_record_many(audits, batch_size=batch_size)
    for record in records:  # keep loaded executions in step, as ``timeline_append`` does
        if NarrativeExport.execution.is_cached(record.export):
            first, _ = reserved[record.export.execution_id]
            record.export.execution.last_sequence = first + len(by_execution[record.export.execution_id])
    changed = [(pk, team_id) for pk, (_, team_id) in reserved.items()]

    def notify() -> None:
        for execution_id, team_id in changed:
            team_state_changed.send(
                sender=Execution, team_id=team_id, execution_id=execution_id, reason="lifecycle_recorded"
            )

    transaction.on_commit(notify)


@dataclass(frozen=True)
class ExecutionStep:
    """A server-side step on one execution's timeline, audited about ``audit_obj`` (a hold, an evidence item)."""

    execution_id: int
    event_type: EventType
    audit_obj: Any
    actor: Any = None
    payload: dict[str, Any] | None = None


@transaction.atomic(savepoint=False)
def execution_steps_record_many(steps: Sequence[ExecutionStep], *, batch_size: int = 5000) -> None:
    """``execution_event_record`` for many executions at once, in a number of queries independent of the count:
    each step's timeline entry and its audit row (carrying the entry's sequence). Used by legal holds (one step
    on every execution a hold covers) and retention runs (one per purged evidence file)."""
    if not steps:
        return
    by_execution: dict[int, list[ExecutionStep]] = defaultdict(list)
    for step in steps:
        by_execution[step.execution_id].append(step)
    now = timezone.now()
    placed = [
        (execution_id, offset, step, dict(step.payload or {}))
        for execution_id, group in sorted(by_execution.items())
        for offset, step in enumerate(group, start=1)
    ]
    reserved = _reserve_sequences({pk: len(group) for pk, group in by_execution.items()}, now=now)
    _append_events_bulk(placed, reserved, now=now, batch_size=batch_size)
    audit_record_many(
        [
            AuditEntry(
                action=step.event_type,
                actor=step.actor,
                obj=step.audit_obj,
                team_id=reserved[execution_id][1],
                payload={"sequence": reserved[execution_id][0] + offset, **body},
            )
            for execution_id, offset, step, body in placed
        ],
        batch_size=batch_size,
    )
    changed = [(pk, team_id) for pk, (_, team_id) in reserved.items()]

    def notify() -> None:
        for execution_id, team_id in changed:
            team_state_changed.send(
                sender=Execution, team_id=team_id, execution_id=execution_id, reason="lifecycle_recorded"
            )

    transaction.on_commit(notify)
