"""Ladder writes: instantiate, approve/reject, delegate and reset (SPEC §6).

Every action locks the export row and then the ladder row (``SELECT … FOR UPDATE``), in the order the packaging
worker locks them, appends history, writes each lifecycle step to the timeline and the audit trail, refreshes the
packaging queue state and tells analytics after commit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.choices import Decision, HistoryAction, LadderStatus, StageStatus
from approvals.guardrails import (
    dispatch_export_for_packaging,
    guardrail_verdict,
    record_packaging_queue_state,
)
from approvals.models import ApprovalHistory, ApprovalLadder, ApprovalSignature, ApprovalStage
from approvals.selectors import (
    active_stage,
    export_lock,
    ladder_lock_with_stages,
    ladder_signatures,
    ladder_stages,
    live_among,
    live_signatures,
    stage_lookup,
)
from approvals.services.signing import signer_verify
from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from exports.choices import ExportStatus
from exports.models import NarrativeExport
from exports.services.clearance import export_clearance_require
from exports.services.lifecycle import export_lifecycle_record, lifecycle_batch
from exports.services.rendering import stored_narrative_digest
from governance.choices import RoleKey
from governance.models import Membership
from governance.selectors.teams import user_roles_in_team
from governance.services.audit import audit_record
from governance.signals import team_state_changed

STAGE_STARTED = "narrative_export.approval.stage_started"
STAGE_COMPLETED = "narrative_export.approval.stage_completed"
FINALIZED = "narrative_export.approval.finalized"
REJECTED = "narrative_export.approval.rejected"
STAGE_DELEGATED = "narrative_export.approval.stage_delegated"
STAGE_RESET = "narrative_export.approval.stage_reset"
NARRATIVE_INTEGRITY_AUDIT_ACTION = "approvals.narrative_integrity_failed"

# Besides the stage's own role holders and its assignee, these roles may delegate a stage or reset a ladder.
DELEGATE_ROLES = frozenset({RoleKey.OPERATOR, RoleKey.ADMIN, RoleKey.COMPLIANCE, RoleKey.PI})
RESET_ROLES = frozenset({RoleKey.ADMIN, RoleKey.COMPLIANCE, RoleKey.PI})
# Export statuses a reset can pull back to awaiting approval; later ones have already left the building.
RESETTABLE_EXPORT_STATUSES = frozenset(
    {ExportStatus.AWAITING_APPROVAL, ExportStatus.APPROVED, ExportStatus.QUEUED, ExportStatus.FAILED}
)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def printed_name(user) -> str:
    return user.get_full_name().strip() or user.get_username()


def _history(
    ladder: ApprovalLadder,
    action: str,
    *,
    stage: ApprovalStage | None = None,
    actor=None,
    now: datetime,
    from_status: str = "",
    to_status: str = "",
    reason: str = "",
    from_assignee=None,
    to_assignee=None,
    payload: dict[str, Any] | None = None,
) -> ApprovalHistory:
    return ApprovalHistory(
        ladder=ladder,
        stage=stage,
        action=action,
        actor=actor,
        from_assignee=from_assignee,
        to_assignee=to_assignee,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        iteration=ladder.iteration,
        payload=payload or {},
        created_at=now,
    )


def _stage_payload(stage: ApprovalStage) -> dict[str, Any]:
    return {
        "stage_id": stage.pk,
        "stage_index": stage.index,
        "stage_name": stage.name,
        "required_role": stage.required_role,
        "iteration": stage.iteration,
    }


def _record_stage_started(export: NarrativeExport, stage: ApprovalStage, actor) -> None:
    export_lifecycle_record(
        export=export,
        event_type=STAGE_STARTED,
        actor=actor,
        payload={**_stage_payload(stage), "due_at": stage.due_at.isoformat()},
    )


def _open_stage(ladder: ApprovalLadder, stage: ApprovalStage, now: datetime) -> None:
    stage.status = StageStatus.IN_PROGRESS
    stage.iteration = ladder.iteration
    stage.started_at = now
    stage.due_at = now + timedelta(hours=stage.sla_hours)
    stage.escalate_at = stage.due_at + timedelta(hours=ladder.escalate_after_hours)
    stage.completed_at = stage.overdue_at = stage.escalated_at = None


def _notify_after_commit(export: NarrativeExport, reason: str) -> None:
    team_id, execution_id = export.execution.team_id, export.execution_id
    transaction.on_commit(
        lambda: team_state_changed.send(
            sender=ApprovalLadder, team_id=team_id, execution_id=execution_id, reason=reason
        )
    )


def _refresh_queue_state(
    export: NarrativeExport,
    ladder: ApprovalLadder,
    actor,
    *,
    stages: list[ApprovalStage] | None = None,
    signatures: list[ApprovalSignature] | None = None,
    locked: bool = False,
) -> None:
    """Re-run the guardrail and record its state. A caller holding the ladder lock may pass the ``stages`` and
    ``signatures`` it keeps current (they are read again otherwise), and ``locked=True`` when ``export`` is its own
    current row lock (see ``record_packaging_queue_state``)."""
    stages = ladder_stages(ladder=ladder) if stages is None else stages
    signatures = live_signatures(ladder=ladder) if signatures is None else signatures
    verdict = guardrail_verdict(export=export, ladder=ladder, stages=stages, signatures=signatures)
    record_packaging_queue_state(export, verdict, actor=actor, locked=locked)


# ---------------------------------------------------------------------------------------------------------------
# Instantiation


def ladder_blueprint(export: NarrativeExport) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stage blueprints and SLA defaults from the export's pinned snapshot, or the default ladder in settings
    for an export created without one."""
    if export.template_snapshot_id is not None:
        document = json.loads(export.template_snapshot.canonical_json)
        return list(document.get("stages") or []), dict(document.get("sla_defaults") or {})
    return list(settings.APPROVALS_DEFAULT_LADDER["stages"]), dict(settings.APPROVALS_DEFAULT_LADDER["sla_defaults"])


@transaction.atomic
@lifecycle_batch()
def ladder_instantiate(*, export: NarrativeExport, actor=None) -> ApprovalLadder:
    """Build the ladder of a new export: stages in order, the first ``in_progress`` and the rest ``pending``."""
    stages_blueprint, sla_defaults = ladder_blueprint(export)
    if not stages_blueprint:
        raise ValidationFailed(
            "The workflow template has no stages: an export needs at least one approval stage.",
            code="template_without_stages",
        )
    now = timezone.now()
    default_sla = int(sla_defaults.get("sla_hours") or settings.APPROVALS_DEFAULT_SLA_HOURS)
    ladder = ApprovalLadder.objects.create(
        export=export,
        template_snapshot_id=export.template_snapshot_id,
        escalate_after_hours=int(sla_defaults.get("escalate_after_hours") or settings.APPROVALS_ESCALATE_AFTER_HOURS),
    )
    stages = [
        ApprovalStage(
            ladder=ladder,
            index=index,
            name=str(blueprint.get("name") or f"Stage {index + 1}")[:200],
            required_role=str(blueprint["required_role"]),
            meaning=str(blueprint.get("meaning") or "Approved")[:200],
            sla_hours=int(blueprint.get("sla_hours") or default_sla),
        )
        for index, blueprint in enumerate(stages_blueprint)
    ]
    _open_stage(ladder, stages[0], now)
    ApprovalStage.objects.bulk_create(stages)
    stages = ladder_stages(ladder=ladder)
    first = stages[0]
    _history(ladder, HistoryAction.STAGE_STARTED, stage=first, actor=actor, now=now, to_status=first.status).save()
    _record_stage_started(export, first, actor)
    _refresh_queue_state(export, ladder, actor)
    _notify_after_commit(export, "approval.ladder_created")
    return ladder


# ---------------------------------------------------------------------------------------------------------------
# Approve / reject


@dataclass(frozen=True)
class DecisionOutcome:
    export: NarrativeExport
    ladder: ApprovalLadder
    stages: list[ApprovalStage]  # the ladder's stages as the decision left them
    signatures: list[ApprovalSignature]  # every signature of the ladder, superseded ones too, the new one last
    signature: ApprovalSignature
    dispatched: bool


def signing_capacity(*, user, stage: ApprovalStage, roles: set[str]) -> str | None:
    if stage.required_role in roles:
        return stage.required_role
    if stage.assignee_id is not None and stage.assignee_id == user.pk:
        return "assignee"
    return None


def separation_of_duties_violation(
    *, user, export: NarrativeExport, stage: ApprovalStage, signatures: list[ApprovalSignature]
) -> str | None:
    """Why ``user`` may not sign ``stage``, or None: the author never signs their own export, and nobody signs
    two stages of one ladder iteration (live signatures are exactly those of the current iteration)."""
    if export.author_id == user.pk:
        return "The author of an export cannot sign its approval ladder."
    earlier = next((s for s in signatures if s.signer_id == user.pk and s.stage_id != stage.pk), None)
    if earlier is not None:
        return f"You already signed stage {earlier.stage_index + 1} ({earlier.stage_name}) of this ladder."
    return None


def stage_decide(
    *,
    export_id: int,
    actor,
    decision: str,
    password: str,
    meaning: str = "",
    comment: str = "",
    expected_stage_id: int,
    export: NarrativeExport | None = None,
) -> DecisionOutcome:
    """Approve or reject the active stage with an electronic signature.

    Not wrapped in one transaction on purpose: the password is checked first, outside every lock (hashing is
    slow by design), and a failed check must be committed to count towards the lockout. ``export`` is the row of
    ``export_id`` with its execution when the caller has already read it (it is read again, locked, to sign).
    """
    if export is None or export.pk != export_id:
        export = NarrativeExport.objects.select_related("execution").filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"Export {export_id} was not found.", code="export_not_found")
    if decision not in Decision.values:
        raise ValidationFailed("decision must be 'approve' or 'reject'.", details={"decision": ["Invalid choice."]})
    if decision == Decision.REJECT and not comment.strip():
        raise ValidationFailed("A rejection needs a comment saying why.", details={"comment": ["Required to reject."]})
    export_clearance_require(export=export, user=actor, action="sign")
    signer_verify(user=actor, password=password, export=export)
    try:
        with transaction.atomic(), lifecycle_batch():
            return _stage_decide_locked(
                export_id=export_id,
                actor=actor,
                decision=decision,
                meaning=meaning,
                comment=comment,
                expected_stage_id=expected_stage_id,
            )
    except NarrativeIntegrityFailed as exc:
        # The refusal is audited on its own: the signing transaction was rolled back with everything in it.
        audit_record(
            action=NARRATIVE_INTEGRITY_AUDIT_ACTION,
            actor=actor,
            obj=export,
            team_id=export.execution.team_id,
            payload={"code": exc.code, "decision": decision, "expected_stage_id": expected_stage_id, **exc.details},
        )
        raise


class NarrativeIntegrityFailed(Conflict):
    code = "narrative_integrity_failed"
    default_message = (
        "The stored narrative or evidence manifest no longer matches the digest to be signed; nothing was signed."
    )


def _signed_content_check(export: NarrativeExport) -> None:
    """Refuse to record a signature over a digest the stored narrative and evidence manifest no longer give.

    Tampering is otherwise caught only at packaging; this costs one sha256 over the stored text, read with the
    export's locked row."""
    recomputed = stored_narrative_digest(export)
    if recomputed != export.narrative_digest:
        raise NarrativeIntegrityFailed(
            details={"recorded_digest": export.narrative_digest, "recomputed_digest": recomputed}
        )


def _stage_decide_locked(
    *, export_id: int, actor, decision: str, meaning: str, comment: str, expected_stage_id: int
) -> DecisionOutcome:
    export = export_lock(export_id=export_id, with_signed_content=True)
    ladder, stages = ladder_lock_with_stages(export=export, role_holder=actor)
    if ladder is None:
        raise Conflict("This export has no approval ladder.", code="ladder_missing")
    if ladder.status != LadderStatus.IN_PROGRESS:
        raise Conflict(f"The ladder is {ladder.status}; nothing is open for signature.", code="ladder_closed")
    stage = active_stage(stages)
    if stage is None or stage.pk != expected_stage_id:
        raise Conflict(
            "The stage you signed is no longer the active stage; reload and review before signing.",
            code="stale_stage",
            details={"expected_stage_id": expected_stage_id, "active_stage_id": stage.pk if stage else None},
        )
    held = {stage.required_role} if stage.holder_has_role else set()  # read with the stages, under the lock
    capacity = signing_capacity(user=actor, stage=stage, roles=held)
    if capacity is None:
        raise PermissionDenied(
            f"Signing '{stage.name}' needs the role {stage.required_role} in this team, or being its assignee.",
            code="not_permitted_to_sign",
            details={"required_role": stage.required_role},
        )
    recorded = ladder_signatures(ladder=ladder)
    signatures = live_among(recorded)
    violation = separation_of_duties_violation(user=actor, export=export, stage=stage, signatures=signatures)
    if violation:
        raise PermissionDenied(violation, code="separation_of_duties")
    if not _DIGEST.fullmatch(export.narrative_digest or ""):
        raise Conflict(
            "The narrative has not been rendered: there is nothing to sign yet.", code="narrative_not_rendered"
        )
    _signed_content_check(export)

    now = timezone.now()
    meaning = (meaning or "").strip() or (stage.meaning if decision == Decision.APPROVE else "Rejected")
    try:
        with transaction.atomic(savepoint=False):  # a duplicate ends the whole transaction anyway
            signature = ApprovalSignature.objects.create(
                ladder=ladder,
                stage=stage,
                signer=actor,
                signer_username=actor.get_username(),
                printed_name=printed_name(actor),
                signed_as=capacity,
                decision=decision,
                meaning=meaning[:200],
                comment=comment,
                signed_at=now,
                narrative_digest=export.narrative_digest,
                stage_index=stage.index,
                stage_name=stage.name,
                required_role=stage.required_role,
                iteration=ladder.iteration,
            )
    except IntegrityError:
        raise Conflict("This stage was signed a moment ago.", code="stale_stage") from None
    signature_payload = {
        **_stage_payload(stage),
        "signature_id": signature.pk,
        "decision": decision,
        "signer": signature.signer_username,
        "printed_name": signature.printed_name,
        "meaning": signature.meaning,
        "signed_at": now.isoformat(),
        "narrative_digest": signature.narrative_digest,
    }
    from_status = stage.status
    stage.status = StageStatus.APPROVED if decision == Decision.APPROVE else StageStatus.REJECTED
    stage.completed_at = now
    stage.save(update_fields=["status", "completed_at"])
    history = [
        _history(
            ladder,
            HistoryAction.APPROVED if decision == Decision.APPROVE else HistoryAction.REJECTED,
            stage=stage,
            actor=actor,
            now=now,
            from_status=from_status,
            to_status=stage.status,
            reason=comment,
            payload={"signature_id": signature.pk, "meaning": signature.meaning},
        )
    ]
    dispatched = False
    if decision == Decision.REJECT:
        ladder.status, ladder.rejected_at = LadderStatus.REJECTED, now
        ladder.save(update_fields=["status", "rejected_at", "updated_at"])
        NarrativeExport.objects.filter(pk=export.pk).update(status=ExportStatus.REJECTED, updated_at=now)
        export.status, export.updated_at = ExportStatus.REJECTED, now
        ApprovalHistory.objects.bulk_create(history)
        export_lifecycle_record(
            export=export, event_type=REJECTED, actor=actor, payload={**signature_payload, "comment": comment}
        )
        _refresh_queue_state(export, ladder, actor, stages=stages, signatures=[*signatures, signature], locked=True)
    else:
        export_lifecycle_record(export=export, event_type=STAGE_COMPLETED, actor=actor, payload=signature_payload)
        following = next((s for s in stages if s.index > stage.index and s.status == StageStatus.PENDING), None)
        if following is not None:
            _open_stage(ladder, following, now)
            following.save(
                update_fields=[
                    "status",
                    "iteration",
                    "started_at",
                    "due_at",
                    "escalate_at",
                    "completed_at",
                    "overdue_at",
                    "escalated_at",
                ]
            )
            history.append(
                _history(
                    ladder,
                    HistoryAction.STAGE_STARTED,
                    stage=following,
                    actor=actor,
                    now=now,
                    from_status=StageStatus.PENDING,
                    to_status=following.status,
                )
            )
            ApprovalHistory.objects.bulk_create(history)
            _record_stage_started(export, following, actor)
            _refresh_queue_state(export, ladder, actor, stages=stages, signatures=[*signatures, signature], locked=True)
        else:
            ladder.status, ladder.finalized_at = LadderStatus.APPROVED, now
            ladder.save(update_fields=["status", "finalized_at", "updated_at"])
            NarrativeExport.objects.filter(pk=export.pk).update(status=ExportStatus.APPROVED, updated_at=now)
            export.status = ExportStatus.APPROVED
            history.append(_history(ladder, HistoryAction.FINALIZED, actor=actor, now=now, to_status=ladder.status))
            ApprovalHistory.objects.bulk_create(history)
            export_lifecycle_record(
                export=export,
                event_type=FINALIZED,
                actor=actor,
                payload={"iteration": ladder.iteration, "signatures": len(signatures) + 1},
            )
            dispatched = dispatch_export_for_packaging(export, actor=actor).queued
    _notify_after_commit(export, f"approval.{decision}")
    if ladder.status == LadderStatus.APPROVED:  # dispatching worked on its own copy of the row
        export.refresh_from_db()
    return DecisionOutcome(
        export=export,
        ladder=ladder,
        stages=stages,
        signatures=[*recorded, signature],
        signature=signature,
        dispatched=dispatched,
    )


# ---------------------------------------------------------------------------------------------------------------
# Delegate


def _user_by_username(username: str):
    return get_user_model().objects.filter(username=username, is_active=True).first()


@transaction.atomic
@lifecycle_batch()
def stage_delegate(
    *, export_id: int, stage_id: int, actor, assignee: str, reason: str, due_at: datetime | None = None
) -> ApprovalStage:
    """Hand an open stage to a member holding its role; optionally move its due date. Clears the overdue and
    escalation markers when the due date moves (history keeps the earlier ones)."""
    export = export_lock(export_id=export_id)
    ladder, stages = ladder_lock_with_stages(export=export)
    if ladder is None:
        raise Conflict("This export has no approval ladder.", code="ladder_missing")
    stage = stage_lookup(stages, stage_id)
    team_id = export.execution.team_id
    roles = user_roles_in_team(user=actor, team_id=team_id)
    if not (roles & DELEGATE_ROLES or stage.required_role in roles or stage.assignee_id == actor.pk):
        raise PermissionDenied(
            "Delegating needs the stage's role, being its assignee, or one of the roles "
            f"{', '.join(sorted(DELEGATE_ROLES))}.",
            code="not_permitted_to_delegate",
        )
    if ladder.status != LadderStatus.IN_PROGRESS or stage.status not in (StageStatus.PENDING, StageStatus.IN_PROGRESS):
        raise Conflict(
            f"Stage '{stage.name}' is {stage.status}; only open stages can be delegated.", code="stage_closed"
        )
    target = _user_by_username(assignee)
    if (
        target is None
        or not Membership.objects.filter(user=target, team_id=team_id, role__key=stage.required_role).exists()
    ):
        raise ValidationFailed(
            f"'{assignee}' is not an active member of this team holding the role {stage.required_role}.",
            code="invalid_assignee",
            details={"assignee": [f"Must be a team member with the role {stage.required_role}."]},
        )
    violation = separation_of_duties_violation(
        user=target, export=export, stage=stage, signatures=live_signatures(ladder=ladder)
    )
    if violation:
        raise ValidationFailed(
            f"'{assignee}' cannot be assigned: {violation}",
            code="separation_of_duties",
            details={"assignee": [violation]},
        )
    now = timezone.now()
    if due_at is not None:
        if stage.status != StageStatus.IN_PROGRESS:
            raise ValidationFailed(
                "A due date can only be set on the active stage; pending stages get theirs when they start.",
                details={"due_at": ["Only for the active stage."]},
            )
        if due_at <= now:
            raise ValidationFailed(
                "The new due date must be in the future.", details={"due_at": ["Must be in the future."]}
            )
    previous_assignee, previous_due = stage.assignee, stage.due_at
    stage.assignee = target
    fields = ["assignee"]
    if due_at is not None:
        stage.due_at = due_at
        stage.escalate_at = due_at + timedelta(hours=ladder.escalate_after_hours)
        stage.overdue_at = stage.escalated_at = None
        fields += ["due_at", "escalate_at", "overdue_at", "escalated_at"]
    stage.save(update_fields=fields)
    _history(
        ladder,
        HistoryAction.DELEGATED,
        stage=stage,
        actor=actor,
        now=now,
        from_status=stage.status,
        to_status=stage.status,
        reason=reason,
        from_assignee=previous_assignee,
        to_assignee=target,
        payload={
            "from_due_at": previous_due.isoformat() if previous_due else None,
            "to_due_at": stage.due_at.isoformat() if stage.due_at else None,
        },
    ).save()
    export_lifecycle_record(
        export=export,
        event_type=STAGE_DELEGATED,
        actor=actor,
        payload={
            **_stage_payload(stage),
            "from_assignee": previous_assignee.username if previous_assignee else None,
            "to_assignee": target.username,
            "reason": reason,
            "due_at": stage.due_at.isoformat() if stage.due_at else None,
        },
    )
    _refresh_queue_state(export, ladder, actor)
    _notify_after_commit(export, "approval.stage_delegated")
    return stage


# ---------------------------------------------------------------------------------------------------------------
# Reset


@transaction.atomic
@lifecycle_batch()
def stage_reset(*, export_id: int, stage_id: int, actor, reason: str) -> ApprovalLadder:
    """Reopen a started stage: later stages return to pending, their signatures and its own are marked
    superseded (kept), the iteration is bumped and packaging is blocked — an export already queued too."""
    export = export_lock(export_id=export_id)
    ladder, stages = ladder_lock_with_stages(export=export)
    if ladder is None:
        raise Conflict("This export has no approval ladder.", code="ladder_missing")
    stage = stage_lookup(stages, stage_id)
    if not user_roles_in_team(user=actor, team_id=export.execution.team_id) & RESET_ROLES:
        raise PermissionDenied(
            f"Resetting a stage needs one of the roles {', '.join(sorted(RESET_ROLES))}.",
            code="not_permitted_to_reset",
        )
    if ladder.status == LadderStatus.REJECTED:
        raise Conflict("A rejected ladder is closed; create a new export version.", code="ladder_closed")
    if export.status not in RESETTABLE_EXPORT_STATUSES:
        raise Conflict(
            f"The export is {export.status}; its ladder can no longer be reset.",
            code="export_not_resettable",
            details={"status": export.status},
        )
    if stage.status == StageStatus.PENDING:
        raise Conflict(f"Stage '{stage.name}' has not started; there is nothing to reset.", code="stage_not_started")
    now = timezone.now()
    ladder.iteration += 1
    reopened = [s for s in stages if s.index >= stage.index]
    superseded = list(
        ApprovalSignature.objects.filter(ladder=ladder, stage__in=reopened, superseded=False).order_by("id")
    )
    ApprovalSignature.objects.filter(pk__in=[s.pk for s in superseded]).update(
        superseded=True, superseded_at=now, superseded_reason=reason
    )
    history = [
        _history(
            ladder,
            HistoryAction.SIGNATURE_SUPERSEDED,
            stage=next(s for s in reopened if s.pk == signature.stage_id),
            actor=actor,
            now=now,
            reason=reason,
            payload={"signature_id": signature.pk, "signer": signature.signer_username},
        )
        for signature in superseded
    ]
    for later in reopened:
        from_status = later.status
        if later.pk == stage.pk:
            _open_stage(ladder, later, now)
            history.append(
                _history(
                    ladder,
                    HistoryAction.RESET,
                    stage=later,
                    actor=actor,
                    now=now,
                    from_status=from_status,
                    to_status=later.status,
                    reason=reason,
                )
            )
        else:
            later.status, later.iteration = StageStatus.PENDING, ladder.iteration
            later.started_at = later.due_at = later.escalate_at = later.completed_at = None
            later.overdue_at = later.escalated_at = None
            if from_status != StageStatus.PENDING:
                history.append(
                    _history(
                        ladder,
                        HistoryAction.RETURNED_TO_PENDING,
                        stage=later,
                        actor=actor,
                        now=now,
                        from_status=from_status,
                        to_status=later.status,
                        reason=reason,
                    )
                )
    ApprovalStage.objects.bulk_update(
        reopened,
        ["status", "iteration", "started_at", "due_at", "escalate_at", "completed_at", "overdue_at", "escalated_at"],
    )
    ladder.status, ladder.finalized_at = LadderStatus.IN_PROGRESS, None
    ladder.save(update_fields=["iteration", "status", "finalized_at", "updated_at"])
    ApprovalHistory.objects.bulk_create(history)
    previous_export_status = export.status
    if export.status != ExportStatus.AWAITING_APPROVAL:
        NarrativeExport.objects.filter(pk=export.pk).update(status=ExportStatus.AWAITING_APPROVAL, updated_at=now)
        export.status = ExportStatus.AWAITING_APPROVAL
    export_lifecycle_record(
        export=export,
        event_type=STAGE_RESET,
        actor=actor,
        payload={
            **_stage_payload(stage),
            "reason": reason,
            "iteration": ladder.iteration,
            "superseded_signature_ids": [s.pk for s in superseded],
            "returned_to_pending": [s.pk for s in reopened if s.pk != stage.pk],
            "previous_export_status": previous_export_status,
        },
    )
    _record_stage_started(export, stage, actor)
    _refresh_queue_state(export, ladder, actor)
    _notify_after_commit(export, "approval.stage_reset")
    return ladder
