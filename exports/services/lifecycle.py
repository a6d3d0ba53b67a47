"""One call writes a lifecycle step of a narrative export to both the execution timeline and the audit trail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from exports.models import Execution, ExecutionEvent, NarrativeExport
from exports.services.executions import EventInput, timeline_append
from governance.services.audit import AuditEntry, audit_record, audit_record_many, normalize_payload
from governance.signals import team_state_changed


def export_lifecycle_record(
    *, export: NarrativeExport, event_type: str, actor=None, payload: dict[str, Any] | None = None
) -> ExecutionEvent | None:
    """``event_type`` is one of SPEC §4's exact names (``narrative_export.…``).

    Inside ``lifecycle_batch()`` the record is only collected (and None returned): the batch writes it, in order,
    when the block ends."""
    pending = _pending.get()
    if pending is not None:
        pending.append(LifecycleRecord(export=export, event_type=event_type, actor=actor, payload=payload))
        return None
    return _record_one(export=export, event_type=event_type, actor=actor, payload=payload)


@transaction.atomic(savepoint=False)  # appends only: no savepoint round trips
def _record_one(*, export: NarrativeExport, event_type: str, actor, payload: dict[str, Any] | None) -> ExecutionEvent:
    body = {"export_id": export.pk, "version": export.version, **(payload or {})}
    (event,) = timeline_append(execution=export.execution, actor=actor, events=[EventInput(event_type, body)])
    audit_record(
        action=event_type,
        actor=actor,
        obj=export,
        team_id=export.execution.team_id,
        payload={"sequence": event.sequence, **body},
    )
    return event


@dataclass(frozen=True)
class LifecycleRecord:
    export: NarrativeExport
    event_type: str
    actor: Any = None
    payload: dict[str, Any] | None = None


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
        records = _pending.get()
    finally:
        _pending.reset(token)
    export_lifecycle_record_many(records)


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
    locked = {
        row.pk: row
        for row in Execution.objects.select_for_update()
        .only("id", "last_sequence", "team_id")
        .filter(pk__in=by_execution)
        .order_by("pk")
    }
    now = timezone.now()
    events, audits = [], []
    for execution_id, group in sorted(by_execution.items()):
        execution = locked[execution_id]
        for record in group:
            execution.last_sequence += 1
            body = {"export_id": record.export.pk, "version": record.export.version, **(record.payload or {})}
            events.append(
                ExecutionEvent(
                    execution_id=execution_id,
                    sequence=execution.last_sequence,
                    event_type=record.event_type,
                    actor_id=getattr(record.actor, "pk", None),
                    payload=normalize_payload(body),
                    occurred_at=now,
                    recorded_at=now,
                )
            )
            audits.append(
                AuditEntry(
                    action=record.event_type,
                    actor=record.actor,
                    obj=record.export,
                    team_id=execution.team_id,
                    payload={"sequence": execution.last_sequence, **body},
                )
            )
        execution.updated_at = now
    ExecutionEvent.objects.bulk_create(events, batch_size=batch_size)
    if len(locked) == 1:  # the interactive case: a plain UPDATE compiles and runs faster than bulk_update's CASE
        (execution,) = locked.values()
        Execution.objects.filter(pk=execution.pk).update(last_sequence=execution.last_sequence, updated_at=now)
    else:
        Execution.objects.bulk_update(list(locked.values()), ["last_sequence", "updated_at"], batch_size=batch_size)
    audit_record_many(audits, batch_size=batch_size)
    for record in records:  # keep loaded executions in step, as ``timeline_append`` does
        if NarrativeExport.execution.is_cached(record.export):
            record.export.execution.last_sequence = locked[record.export.execution_id].last_sequence
    changed = [(row.pk, row.team_id) for row in locked.values()]

    def notify() -> None:
        for execution_id, team_id in changed:
            team_state_changed.send(
                sender=Execution, team_id=team_id, execution_id=execution_id, reason="lifecycle_recorded"
            )

    transaction.on_commit(notify)
