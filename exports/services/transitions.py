"""The export lifecycle's only writers: ``NarrativeExport.status`` and ``packaging_queue_state`` change here.

``export_transition`` moves an export along one arrow of ``EXPORT_TRANSITIONS`` (exports/choices.py) and writes
the step to the timeline and the audit trail; ``export_queue_state_record`` stores the guardrail's queue state.
approvals, the packaging worker and retention all ask through them (docs/architecture.md, "The export
lifecycle"); a test keeps every other module from writing the two columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict
from exports.choices import ExportStatus, export_transition_allowed
from exports.events import EventType
from exports.models import NarrativeExport
from exports.queue_state import QueueState
from exports.services.lifecycle import LifecycleRecord, export_lifecycle_record, export_lifecycle_record_many
from textpolicy.utc import utc_iso

# Entering these statuses stamps the moment on the export.
_STAMPS: dict[str, str] = {ExportStatus.QUEUED: "queued_at", ExportStatus.PACKAGED: "packaged_at"}


class IllegalExportTransition(Conflict):
    code = "illegal_transition"
    default_message = "The export cannot move to that status from the one it is in."

    def __init__(self, *, export: NarrativeExport, to: str) -> None:
        super().__init__(
            f"Export {export.pk} is {export.status} and cannot become {to}.",
            details={"export_id": export.pk, "from": export.status, "to": str(to)},
        )


def export_transition(
    *,
    export: NarrativeExport,
    to: str,
    actor=None,
    event_type: EventType | None,
    payload: dict[str, Any] | None = None,
    queue_state: QueueState | None = None,
    save_also: Iterable[str] = (),
) -> NarrativeExport:
    """Move ``export`` (the caller's locked row) to status ``to`` and record ``event_type`` with ``payload``.

    Raises :class:`IllegalExportTransition` (409 ``illegal_transition``) when the table has no such arrow.
    ``queue_state`` is stored with the status; ``save_also`` names other fields of the row the caller changed,
    saved in the same statement. Entering ``queued`` or ``packaged`` stamps ``queued_at``/``packaged_at``."""
    if not export_transition_allowed(export.status, to):  # refused before any write: the caller's transaction
        raise IllegalExportTransition(export=export, to=to)  # stays usable
    with transaction.atomic(savepoint=False):  # writes only, nothing to recover from
        return _transition_write(
            export=export,
            to=to,
            actor=actor,
            event_type=event_type,
            payload=payload,
            queue_state=queue_state,
            save_also=save_also,
        )


def _transition_write(
    *,
    export: NarrativeExport,
    to: str,
    actor,
    event_type: EventType | None,
    payload: dict[str, Any] | None,
    queue_state: QueueState | None,
    save_also: Iterable[str],
) -> NarrativeExport:
    now = timezone.now()
    export.status = to
    fields = ["status", "updated_at", *save_also]
    stamp = _STAMPS.get(to)
    if stamp is not None:
        setattr(export, stamp, now)
        fields.append(stamp)
    if queue_state is not None:
        export.packaging_queue_state = queue_state.as_json()
        fields.append("packaging_queue_state")
    export.save(update_fields=list(dict.fromkeys(fields)))
    if event_type is not None:
        export_lifecycle_record(export=export, event_type=event_type, actor=actor, payload=payload)
    return export


@transaction.atomic(savepoint=False)
def export_transition_many(
    *,
    exports: Sequence[NarrativeExport],
    to: str,
    event_type: EventType,
    actor=None,
    payloads: Mapping[int, dict[str, Any]] | None = None,
) -> None:
    """``export_transition`` for many exports along arrows into the same status, in a number of queries
    independent of the count (retention runs, team erasure): one ``UPDATE``, then every step in one batch.

    ``exports`` are the caller's locked rows with their executions loaded; ``payloads`` maps an export id to its
    step's payload. Any export without an arrow to ``to`` raises :class:`IllegalExportTransition` before a write."""
    for export in exports:
        if not export_transition_allowed(export.status, to):
            raise IllegalExportTransition(export=export, to=to)
    if not exports:
        return
    now = timezone.now()
    changes: dict[str, Any] = {"status": to, "updated_at": now}
    stamp = _STAMPS.get(to)
    if stamp is not None:
        changes[stamp] = now
    NarrativeExport.objects.filter(pk__in=[export.pk for export in exports]).update(**changes)
    for export in exports:
        for field, value in changes.items():
            setattr(export, field, value)
    export_lifecycle_record_many(
        [
            LifecycleRecord(export=export, event_type=event_type, actor=actor, payload=(payloads or {}).get(export.pk))
            for export in exports
        ]
    )


@transaction.atomic(savepoint=False)
def export_queue_state_record(
    *,
    export: NarrativeExport,
    state: QueueState,
    actor=None,
    announce: EventType | None = None,
    mirror: NarrativeExport | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store ``state`` on ``export`` (the caller's locked row, read in this transaction) unless the stored one is
    the same state (``QueueState.key``); returns (state as stored, changed). When it changed and ``announce`` is
    given, that event is recorded with the state. ``mirror``, another copy of the row the caller holds, is kept
    in step."""
    stored = export.packaging_queue_state or {}
    if QueueState.from_json(stored).key == state.key:
        if mirror is not None:
            mirror.packaging_queue_state = stored
        return stored, False
    if state.updated_at is None:
        state = replace(state, updated_at=utc_iso(timezone.now()))
    body = state.as_json()
    NarrativeExport.objects.filter(pk=export.pk).update(packaging_queue_state=body, updated_at=timezone.now())
    for row in (export, mirror):
        if row is not None:
            row.packaging_queue_state = body
    if announce is not None:
        export_lifecycle_record(export=export, event_type=announce, actor=actor, payload={"state": body})
    return body, True
