"""Closing the escalation loop (docs/escalations.md): after chasing an overdue stage, an operator records whom
they contacted, what came of it and when to look again. The record goes to the execution's timeline
(``governance.escalation.recorded``) and the audit trail in the same transaction."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from approvals.choices import EscalationOutcome, LadderStatus, StageStatus
from approvals.models import StageEscalation
from approvals.selectors import export_lock, ladder_lock_with_stages
from config.errors import Conflict, NotFound, ValidationFailed
from exports.events import EventType
from exports.services.lifecycle import export_lifecycle_record
from governance.choices import RoleKey
from governance.permissions import require_team_role
from textpolicy.utc import utc_iso

# Who chases overdue stages: the dashboard shows its Escalate action and the outcome form to these roles only.
ESCALATION_ROLES = frozenset({RoleKey.OPERATOR, RoleKey.ADMIN, RoleKey.COMPLIANCE})


@transaction.atomic
def escalation_record(
    *,
    export_id: int,
    actor,
    stage_id: int,
    contacted: str,
    outcome: str,
    next_check_at: datetime | None = None,
) -> StageEscalation:
    """Record the outcome of an escalation of ``stage_id`` of ``export_id`` (already checked visible to
    ``actor``). The stage must be an open stage of the export's current ladder; ``next_check_at`` must lie ahead."""
    export = export_lock(export_id=export_id)
    require_team_role(user=actor, team_id=export.execution.team_id, roles=ESCALATION_ROLES, action="record escalations")
    ladder, stages = ladder_lock_with_stages(export=export)
    stage = next((stage for stage in stages if stage.pk == stage_id), None)
    if stage is None or ladder is None:  # no ladder: no stages either
        raise NotFound(f"Stage {stage_id} is not a stage of this export's ladder.", code="stage_not_found")
    if ladder.status != LadderStatus.IN_PROGRESS or stage.status != StageStatus.IN_PROGRESS:
        raise Conflict(
            f"Stage '{stage.name}' is not waiting for a signature; there is nothing to escalate.",
            code="stage_not_open",
            details={"stage_status": stage.status, "ladder_status": ladder.status},
        )
    if outcome not in EscalationOutcome.values:
        raise ValidationFailed(
            "Choose an outcome from the list.",
            details={"fields": {"outcome": [f"Not one of {', '.join(EscalationOutcome.values)}."]}},
        )
    now = timezone.now()
    if next_check_at is not None and next_check_at <= now:
        raise ValidationFailed(
            "The next check must be in the future.", details={"fields": {"next_check_at": ["Must be later than now."]}}
        )
    payload = {
        "stage_id": stage.pk,
        "stage": stage.name,
        "required_role": stage.required_role,
        "contacted": contacted,
        "outcome": outcome,
        "next_check_at": utc_iso(next_check_at),
        "due_at": utc_iso(stage.due_at),
    }
    event = export_lifecycle_record(
        export=export, event_type=EventType.ESCALATION_RECORDED, actor=actor, payload=payload
    )
    return StageEscalation.objects.create(
        ladder=ladder,
        stage=stage,
        actor=actor,
        contacted=contacted,
        outcome=outcome,
        next_check_at=next_check_at,
        recorded_at=now,
        event_sequence=event.sequence,  # type: ignore[union-attr]  # recorded at once: not inside a batch
    )
