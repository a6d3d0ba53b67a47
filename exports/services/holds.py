"""Writes for legal holds: place and release (docs/records-lifecycle.md).

A hold freezes a whole team or one export version: while it is active nothing it covers is purged, expired or
erased. It changes no export status. Placing and releasing are recorded on the timeline of every execution the
hold covers and in the audit trail (its reason as a digest). Releasing purges nothing by itself: the next
retention run does, in its own transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from exports.choices import LegalHoldScope
from exports.events import EventType
from exports.models import Execution, LegalHold, NarrativeExport
from exports.permissions import HOLD_MANAGERS, require_team_role
from exports.services.lifecycle import ExecutionStep, execution_steps_record_many
from governance.models import Team
from governance.services.audit import audit_record


def _reason_required(reason: str, field: str = "reason") -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("Give a reason.", details={"fields": {field: ["This field may not be blank."]}})
    return text


def _require_manager(*, actor, team_id: int, action: str) -> None:
    if not getattr(actor, "is_superuser", False):
        require_team_role(user=actor, team_id=team_id, roles=HOLD_MANAGERS, action=action)


def _target_export(*, team: Team, scope: str, export_id: int | None) -> NarrativeExport | None:
    if scope == LegalHoldScope.TEAM:
        if export_id is not None:
            raise ValidationFailed(
                "A team-wide hold names no export; use scope 'export' to hold one.",
                details={"fields": {"export_id": ["Only with scope 'export'."]}},
            )
        return None
    if scope != LegalHoldScope.EXPORT:
        raise ValidationFailed("Scope is 'team' or 'export'.", details={"fields": {"scope": ["Not a valid choice."]}})
    if export_id is None:
        raise ValidationFailed(
            "An export hold names the export.", details={"fields": {"export_id": ["This field is required."]}}
        )
    export = NarrativeExport.objects.filter(pk=export_id, execution__team=team).select_related("execution").first()
    if export is None:
        raise NotFound(f"No export {export_id} in team '{team.slug}'.", code="export_not_found")
    return export


def _covered_execution_ids(hold: LegalHold) -> list[int]:
    if hold.export is not None:
        return [hold.export.execution_id]
    return list(Execution.objects.filter(team_id=hold.team_id).order_by("pk").values_list("pk", flat=True))


def _hold_record(hold: LegalHold, *, event_type: EventType, actor, reason: str) -> None:
    """The step on every covered execution's timeline, each with its audit row; a team without executions gets
    the audit row alone."""
    payload = {"legal_hold_id": hold.pk, "scope": hold.scope, "export_id": hold.export_id, "reason": reason}
    executions = _covered_execution_ids(hold)
    if not executions:
        audit_record(action=event_type, actor=actor, obj=hold, team_id=hold.team_id, payload=payload)
        return
    execution_steps_record_many(
        [
            ExecutionStep(execution_id=pk, event_type=event_type, audit_obj=hold, actor=actor, payload=payload)
            for pk in executions
        ]
    )


@transaction.atomic
def legal_hold_place(*, actor, team: Team, scope: str, reason: str, export_id: int | None = None) -> LegalHold:
    """Place a hold on ``team`` (scope ``team``) or on one of its exports (scope ``export``). The actor needs
    ``compliance`` or ``admin`` in the team (403); an export outside the team is a 404."""
    _require_manager(actor=actor, team_id=team.pk, action="place legal holds")
    text = _reason_required(reason)
    export = _target_export(team=team, scope=scope, export_id=export_id)
    hold = LegalHold.objects.create(team=team, scope=scope, export=export, reason=text, placed_by=actor)
    _hold_record(hold, event_type=EventType.LEGAL_HOLD_PLACED, actor=actor, reason=text)
    return hold


@transaction.atomic
def legal_hold_release(*, actor, hold_id: int, reason: str) -> LegalHold:
    """Release an active hold with a reason. 409 ``legal_hold_released`` when it already was; nothing is purged
    here (the next ``enforce_retention`` run does that)."""
    hold = LegalHold.objects.select_for_update(of=("self",)).select_related("export").filter(pk=hold_id).first()
    if hold is None:
        raise NotFound(f"No legal hold {hold_id}.", code="legal_hold_not_found")
    _require_manager(actor=actor, team_id=hold.team_id, action="release legal holds")
    text = _reason_required(reason)
    if hold.released_at is not None:
        raise Conflict(
            f"Legal hold {hold.pk} was already released.",
            code="legal_hold_released",
            details={"legal_hold_id": hold.pk, "released_at": hold.released_at.isoformat()},
        )
    hold.released_at, hold.released_by, hold.release_reason = timezone.now(), actor, text
    hold.save(update_fields=["released_at", "released_by", "release_reason"])
    _hold_record(hold, event_type=EventType.LEGAL_HOLD_RELEASED, actor=actor, reason=text)
    return hold
