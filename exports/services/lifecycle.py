"""One call writes a lifecycle step of a narrative export to both the execution timeline and the audit trail."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from exports.models import ExecutionEvent, NarrativeExport
from exports.services.executions import EventInput, timeline_append
from governance.services.audit import audit_record


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
