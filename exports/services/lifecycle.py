"""One call writes a lifecycle step of a narrative export to both the execution timeline and the audit trail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from exports.models import Execution, ExecutionEvent, NarrativeExport
from exports.services.executions import EventInput, timeline_append
from governance.services.audit import AuditEntry, audit_record, audit_record_many, normalize_payload
from governance.signals import team_state_changed


@transaction.atomic
def export_lifecycle_record(
    *, export: NarrativeExport, event_type: str, actor=None, payload: dict[str, Any] | None = None
) -> ExecutionEvent:
    """``event_type`` is one of SPEC §4's exact names (``narrative_export.…``)."""
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


@transaction.atomic
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
    Execution.objects.bulk_update(list(locked.values()), ["last_sequence", "updated_at"], batch_size=batch_size)
    audit_record_many(audits, batch_size=batch_size)
    changed = [(row.pk, row.team_id) for row in locked.values()]

    def notify() -> None:
        for execution_id, team_id in changed:
            team_state_changed.send(
                sender=Execution, team_id=team_id, execution_id=execution_id, reason="lifecycle_recorded"
            )

    transaction.on_commit(notify)
