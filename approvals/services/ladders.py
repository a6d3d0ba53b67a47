"""Ladder writes: instantiate, approve/reject, delegate and reset (docs/architecture.md, "Approval ladders").

Every action locks the export row and then the ladder row (``SELECT … FOR UPDATE``), in the order the packaging
worker locks them, appends history, writes each lifecycle step to the timeline and the audit trail, refreshes the
packaging queue state and tells analytics after commit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.choices import DELEGATE_ROLES, RESET_ROLES, Decision, HistoryAction, LadderStatus, StageStatus
from approvals.guardrails import (
    HeldLadder,
    dispatch_export_for_packaging,
    guardrail_verdict,
    record_packaging_queue_state,
)
from approvals.models import ApprovalHistory, ApprovalLadder, ApprovalSignature, ApprovalStage
from approvals.selectors import (
    active_stage,
    delegation_permitted,
    delegation_refusal,
    export_lock,
    ladder_lock_with_stages,
    ladder_signatures,
    ladder_stages,
    live_among,
    live_signatures,
    reset_permitted,
    reset_refusal,
    separation_of_duties_violation,
    signing_capacity,
    stage_lookup,
)
from approvals.services.signature_records import signature_record_bytes
from approvals.services.signing_controls import signature_authenticate, signing_session_touch
from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from exports.choices import ExportStatus
from exports.events import EventType
from exports.models import NarrativeExport
from exports.services.clearance import export_clearance_require
from exports.services.lifecycle import export_lifecycle_record, lifecycle_batch
from exports.services.rendering import stored_narrative_digest
from exports.services.transitions import export_transition
from governance.choices import TimestampSubject
from governance.ladder import stage_due_at, stage_escalate_at
from governance.models import Membership
from governance.selectors.teams import user_roles_in_team
from governance.services.audit import audit_record
from governance.services.outbox import team_state_announce
from governance.services.timestamps import timestamp_request
from governance.validation import DEFAULT_REJECT_MEANING, meanings_agree

NARRATIVE_INTEGRITY_AUDIT_ACTION = "approvals.narrative_integrity_failed"

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
        event_type=EventType.STAGE_STARTED,
        actor=actor,
        payload={**_stage_payload(stage), "due_at": stage.due_at.isoformat()},  # type: ignore[union-attr]
    )


def _open_stage(ladder: ApprovalLadder, stage: ApprovalStage, now: datetime) -> None:
    stage.status = StageStatus.IN_PROGRESS
    stage.iteration = ladder.iteration
    stage.started_at = now
    stage.due_at = stage_due_at(now, stage.sla_hours)
    stage.escalate_at = stage_escalate_at(stage.due_at, ladder.escalate_after_hours)
    stage.completed_at = stage.overdue_at = stage.escalated_at = None


# What opening (or reopening) a stage changes.
_OPENED_STAGE_FIELDS = [
    "status",
    "iteration",
    "started_at",
    "due_at",
    "escalate_at",
    "completed_at",
    "overdue_at",
    "escalated_at",
]


def _notify_after_commit(export: NarrativeExport, reason: str) -> None:
    team_state_announce(team_id=export.execution.team_id, execution_id=export.execution_id, reason=reason)


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
    if export.template_snapshot is not None:
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
            reject_meaning=str(blueprint.get("reject_meaning") or DEFAULT_REJECT_MEANING)[:200],
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
    username: str | None = None,
    signing_session: str | None = None,
) -> DecisionOutcome:
    """Approve or reject the active stage with an electronic signature.

    Not wrapped in one transaction on purpose: the password is checked first, outside every lock (hashing is
    slow by design), and a failed check must be committed to count towards the lockout. ``export`` is the row of
    ``export_id`` with its execution when the caller has already read it (it is read again, locked, to sign).
    ``signing_session`` names the caller's session (``signing_session_key``): its first signature needs
    ``username`` too (docs/part11.md); without a session every signature does.
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
    signed_stage = ApprovalStage.objects.filter(pk=expected_stage_id, ladder__export_id=export.pk).first()
    if signed_stage is not None:
        # Refused before the password check (which would count); checked again under the lock.
        signature_meaning(stage=signed_stage, decision=decision, meaning=meaning)
    signature_authenticate(user=actor, password=password, username=username, session_key=signing_session, export=export)
    try:
        with transaction.atomic(), lifecycle_batch():
            outcome = _stage_decide_locked(
                export_id=export_id,
                actor=actor,
                decision=decision,
                meaning=meaning,
                comment=comment,
                expected_stage_id=expected_stage_id,
            )
            signing_session_touch(user=actor, session_key=signing_session, now=outcome.signature.signed_at)
            return outcome
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


def signature_meaning(*, stage: ApprovalStage, decision: str, meaning: str) -> str:
    """What a signature on ``stage`` means: the given meaning, or the stage's meaning for the decision.

    A signature must not contradict its decision: a rejection that reads as the stage's approval meaning (or an
    approval that reads as its rejection meaning) is refused with 400 ``meaning_mismatch``, never stored."""
    given = (meaning or "").strip()
    approving = decision == Decision.APPROVE
    if not given:
        return stage.meaning if approving else stage.reject_meaning
    contradicted = stage.reject_meaning if approving else stage.meaning
    if contradicted and meanings_agree(given, contradicted):
        expected = stage.meaning if approving else stage.reject_meaning
        raise ValidationFailed(
            f"'{given}' is this stage's {'rejection' if approving else 'approval'} meaning; "
            f"{'an approval' if approving else 'a rejection'} here means '{expected}'.",
            code="meaning_mismatch",
            details={"meaning": [f"Does not match the decision '{decision}'."], "expected_meaning": expected},
        )
    return given


@dataclass
class _Signing:
    """One signature being recorded: the locked rows it acts on and what it has written so far."""

    actor: Any
    export: NarrativeExport
    ladder: ApprovalLadder
    stages: list[ApprovalStage]
    stage: ApprovalStage
    recorded: list[ApprovalSignature]  # every signature of the ladder before this one
    live: list[ApprovalSignature]  # those of the current iteration
    now: datetime
    history: list[ApprovalHistory] = field(default_factory=list)
    signature: ApprovalSignature | None = None

    @property
    def stored(self) -> ApprovalSignature:
        """The signature ``_signature_store`` wrote: every step after it reads this one."""
        assert self.signature is not None, "the signature is stored before the stage closes"
        return self.signature

    @property
    def held_roles(self) -> set[str]:
        """The stage's role if the signer holds it, read with the stages under the lock."""
        return {self.stage.required_role} if _holder_has_role(self.stage) else set()


def _holder_has_role(stage: ApprovalStage) -> bool:
    """``holder_has_role`` is annotated on the stages ``ladder_lock_with_stages`` reads for a role holder."""
    return stage.holder_has_role  # type: ignore[attr-defined]  # a query annotation, not a model field


def _stage_decide_locked(
    *, export_id: int, actor, decision: str, meaning: str, comment: str, expected_stage_id: int
) -> DecisionOutcome:
    """The signing SOP, under the export and ladder locks: check the stage is the one signed and the signer may
    sign it, store the signature and close the stage, then reject the ladder, open the next stage, or finalize."""
    signing = _signing_open(export_id=export_id, actor=actor, expected_stage_id=expected_stage_id)
    _signer_check(signing)
    _signed_content_ready(signing.export)
    meaning = signature_meaning(stage=signing.stage, decision=decision, meaning=meaning)
    _signature_store(signing, decision=decision, meaning=meaning, comment=comment)
    _stage_close(signing, decision=decision, comment=comment)
    dispatched = False
    if decision == Decision.REJECT:
        _ladder_reject(signing, comment=comment)
    elif (following := _next_pending(signing)) is not None:
        _stage_advance(signing, following)
    else:
        dispatched = _ladder_finalize(signing)
    # No announcement of its own: the lifecycle steps every decision records announce the team's change once.
    return DecisionOutcome(
        export=signing.export,
        ladder=signing.ladder,
        stages=signing.stages,
        signatures=[*signing.recorded, signing.stored],
        signature=signing.stored,
        dispatched=dispatched,
    )


def _signing_open(*, export_id: int, actor, expected_stage_id: int) -> _Signing:
    """Lock the export and its ladder; the stage signed must still be the ladder's active stage."""
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
    recorded = ladder_signatures(ladder=ladder)
    return _Signing(
        actor=actor,
        export=export,
        ladder=ladder,
        stages=stages,
        stage=stage,
        recorded=recorded,
        live=live_among(recorded),
        now=timezone.now(),
    )


def _signer_check(signing: _Signing) -> None:
    """The signer holds the stage's role (read with the stages, under the lock) or is its assignee, and signs no
    two stages of one iteration and not their own export."""
    stage, actor = signing.stage, signing.actor
    if signing_capacity(user=actor, stage=stage, roles=signing.held_roles) is None:
        raise PermissionDenied(
            f"Signing '{stage.name}' needs the role {stage.required_role} in this team, or being its assignee.",
            code="not_permitted_to_sign",
            details={"required_role": stage.required_role},
        )
    violation = separation_of_duties_violation(user=actor, export=signing.export, stage=stage, signatures=signing.live)
    if violation:
        raise PermissionDenied(violation, code="separation_of_duties")


def _signed_content_ready(export: NarrativeExport) -> None:
    if not _DIGEST.fullmatch(export.narrative_digest or ""):
        raise Conflict(
            "The narrative has not been rendered: there is nothing to sign yet.", code="narrative_not_rendered"
        )
    _signed_content_check(export)


def _signature_store(signing: _Signing, *, decision: str, meaning: str, comment: str) -> None:
    stage, actor, ladder = signing.stage, signing.actor, signing.ladder
    capacity = signing_capacity(user=actor, stage=stage, roles=signing.held_roles)
    assert capacity is not None, "_signer_check refuses a signer without a capacity"
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
                signed_at=signing.now,
                narrative_digest=signing.export.narrative_digest,
                stage_index=stage.index,
                stage_name=stage.name,
                required_role=stage.required_role,
                iteration=ladder.iteration,
            )
    except IntegrityError:
        raise Conflict("This stage was signed a moment ago.", code="stale_stage") from None
    signing.signature = signature
    timestamp_request(
        subject_type=TimestampSubject.SIGNATURE,
        subject_id=signature.pk,
        data=signature_record_bytes(signature),
        team_id=signing.export.execution.team_id,
    )


def _signature_payload(signing: _Signing) -> dict[str, Any]:
    signature = signing.stored
    return {
        **_stage_payload(signing.stage),
        "signature_id": signature.pk,
        "decision": signature.decision,
        "signer": signature.signer_username,
        "printed_name": signature.printed_name,
        "meaning": signature.meaning,
        "signed_at": signing.now.isoformat(),
        "narrative_digest": signature.narrative_digest,
    }


def _stage_close(signing: _Signing, *, decision: str, comment: str) -> None:
    stage, signature = signing.stage, signing.stored
    from_status = stage.status
    approving = decision == Decision.APPROVE
    stage.status = StageStatus.APPROVED if approving else StageStatus.REJECTED
    stage.completed_at = signing.now
    stage.save(update_fields=["status", "completed_at"])
    signing.history.append(
        _history(
            signing.ladder,
            HistoryAction.APPROVED if approving else HistoryAction.REJECTED,
            stage=stage,
            actor=signing.actor,
            now=signing.now,
            from_status=from_status,
            to_status=stage.status,
            reason=comment,
            payload={"signature_id": signature.pk, "meaning": signature.meaning},
        )
    )


def _ladder_reject(signing: _Signing, *, comment: str) -> None:
    """A rejection ends the ladder and the export version; a new version starts a new ladder."""
    ladder = signing.ladder
    ladder.status, ladder.rejected_at = LadderStatus.REJECTED, signing.now
    ladder.save(update_fields=["status", "rejected_at", "updated_at"])
    ApprovalHistory.objects.bulk_create(signing.history)
    export_transition(
        export=signing.export,
        to=ExportStatus.REJECTED,
        actor=signing.actor,
        event_type=EventType.APPROVAL_REJECTED,
        payload={**_signature_payload(signing), "comment": comment},
    )
    _refresh_signed_queue_state(signing)


def _next_pending(signing: _Signing) -> ApprovalStage | None:
    return next((s for s in signing.stages if s.index > signing.stage.index and s.status == StageStatus.PENDING), None)


def _stage_advance(signing: _Signing, following: ApprovalStage) -> None:
    """An approval of a stage that is not the last opens the next one."""
    export_lifecycle_record(
        export=signing.export,
        event_type=EventType.STAGE_COMPLETED,
        actor=signing.actor,
        payload=_signature_payload(signing),
    )
    _open_stage(signing.ladder, following, signing.now)
    following.save(update_fields=_OPENED_STAGE_FIELDS)
    signing.history.append(
        _history(
            signing.ladder,
            HistoryAction.STAGE_STARTED,
            stage=following,
            actor=signing.actor,
            now=signing.now,
            from_status=StageStatus.PENDING,
            to_status=following.status,
        )
    )
    ApprovalHistory.objects.bulk_create(signing.history)
    _record_stage_started(signing.export, following, signing.actor)
    _refresh_signed_queue_state(signing)


def _ladder_finalize(signing: _Signing) -> bool:
    """The last approval finalizes the ladder, approves the export and dispatches it for packaging."""
    ladder, export, actor = signing.ladder, signing.export, signing.actor
    export_lifecycle_record(
        export=export, event_type=EventType.STAGE_COMPLETED, actor=actor, payload=_signature_payload(signing)
    )
    ladder.status, ladder.finalized_at = LadderStatus.APPROVED, signing.now
    ladder.save(update_fields=["status", "finalized_at", "updated_at"])
    signing.history.append(
        _history(ladder, HistoryAction.FINALIZED, actor=actor, now=signing.now, to_status=ladder.status)
    )
    ApprovalHistory.objects.bulk_create(signing.history)
    export_transition(
        export=export,
        to=ExportStatus.APPROVED,
        actor=actor,
        event_type=EventType.APPROVAL_FINALIZED,
        payload={"iteration": ladder.iteration, "signatures": len(signing.live) + 1},
    )
    held = HeldLadder(ladder=ladder, stages=signing.stages, signatures=[*signing.live, signing.stored])
    return dispatch_export_for_packaging(export, actor=actor, held=held).queued


def _refresh_signed_queue_state(signing: _Signing) -> None:
    _refresh_queue_state(
        signing.export,
        signing.ladder,
        signing.actor,
        stages=signing.stages,
        signatures=[*signing.live, signing.stored],
        locked=True,
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
    _delegation_check(actor=actor, export=export, ladder=ladder, stage=stage)
    target = _delegate_target(assignee=assignee, export=export, ladder=ladder, stage=stage)
    now = timezone.now()
    _due_date_check(stage=stage, due_at=due_at, now=now)
    previous_assignee, previous_due = stage.assignee, stage.due_at
    _stage_hand_over(ladder=ladder, stage=stage, target=target, due_at=due_at)
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
        payload={"from_due_at": _iso(previous_due), "to_due_at": _iso(stage.due_at)},
    ).save()
    export_lifecycle_record(
        export=export,
        event_type=EventType.STAGE_DELEGATED,
        actor=actor,
        payload={
            **_stage_payload(stage),
            "from_assignee": previous_assignee.username if previous_assignee else None,
            "to_assignee": target.username,
            "reason": reason,
            "due_at": _iso(stage.due_at),
        },
    )
    _refresh_queue_state(export, ladder, actor)
    _notify_after_commit(export, "approval.stage_delegated")
    return stage


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _delegation_check(*, actor, export: NarrativeExport, ladder: ApprovalLadder, stage: ApprovalStage) -> None:
    roles = user_roles_in_team(user=actor, team_id=export.execution.team_id)
    if not delegation_permitted(user=actor, roles=roles, stage=stage):
        raise PermissionDenied(
            "Delegating needs the stage's role, being its assignee, or one of the roles "
            f"{', '.join(sorted(DELEGATE_ROLES))}.",
            code="not_permitted_to_delegate",
        )
    refusal = delegation_refusal(ladder=ladder, stage=stage)
    if refusal is not None:
        raise refusal


def _delegate_target(*, assignee: str, export: NarrativeExport, ladder: ApprovalLadder, stage: ApprovalStage):
    """The new assignee: an active member of the team holding the stage's role, free to sign it."""
    target = _user_by_username(assignee)
    team_id = export.execution.team_id
    if (
        target is None
        or not Membership.objects.filter(user=target, team_id=team_id, role__key=stage.required_role).exists()
    ):
        raise NotFound(
            f"'{assignee}' is not an active member of this team holding the role {stage.required_role}.",
            code="invalid_assignee",
            details={"assignee": [f"Must be a team member with the role {stage.required_role}."]},
        )
    violation = separation_of_duties_violation(
        user=target, export=export, stage=stage, signatures=live_signatures(ladder=ladder)
    )
    if violation:
        raise Conflict(
            f"'{assignee}' cannot be assigned: {violation}",
            code="separation_of_duties",
            details={"assignee": [violation]},
        )
    return target


def _due_date_check(*, stage: ApprovalStage, due_at: datetime | None, now: datetime) -> None:
    if due_at is None:
        return
    if stage.status != StageStatus.IN_PROGRESS:
        raise Conflict(
            "A due date can only be set on the active stage; pending stages get theirs when they start.",
            code="stage_not_active",
            details={"due_at": ["Only for the active stage."]},
        )
    if due_at <= now:
        raise ValidationFailed(
            "The new due date must be in the future.", details={"due_at": ["Must be in the future."]}
        )


def _stage_hand_over(*, ladder: ApprovalLadder, stage: ApprovalStage, target, due_at: datetime | None) -> None:
    stage.assignee = target
    fields = ["assignee"]
    if due_at is not None:
        stage.due_at = due_at
        stage.escalate_at = stage_escalate_at(due_at, ladder.escalate_after_hours)
        stage.overdue_at = stage.escalated_at = None
        fields += ["due_at", "escalate_at", "overdue_at", "escalated_at"]
    stage.save(update_fields=fields)


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
    if not reset_permitted(roles=user_roles_in_team(user=actor, team_id=export.execution.team_id)):
        raise PermissionDenied(
            f"Resetting a stage needs one of the roles {', '.join(sorted(RESET_ROLES))}.",
            code="not_permitted_to_reset",
        )
    refusal = reset_refusal(ladder=ladder, export=export, stage=stage)
    if refusal is not None:
        raise refusal
    now = timezone.now()
    ladder.iteration += 1
    reopened = [s for s in stages if s.index >= stage.index]
    superseded = _signatures_supersede(ladder=ladder, reopened=reopened, reason=reason, now=now)
    history = [
        _superseded_history(ladder, signature, reopened, actor=actor, reason=reason, now=now)
        for signature in superseded
    ]
    history += _stages_reopen(ladder=ladder, stage=stage, reopened=reopened, actor=actor, reason=reason, now=now)
    ladder.status, ladder.finalized_at = LadderStatus.IN_PROGRESS, None
    ladder.save(update_fields=["iteration", "status", "finalized_at", "updated_at"])
    ApprovalHistory.objects.bulk_create(history)
    previous_export_status = export.status
    if export.status != ExportStatus.AWAITING_APPROVAL:
        export_transition(export=export, to=ExportStatus.AWAITING_APPROVAL, actor=actor, event_type=None)
    export_lifecycle_record(
        export=export,
        event_type=EventType.STAGE_RESET,
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


def _signatures_supersede(
    *, ladder: ApprovalLadder, reopened: list[ApprovalStage], reason: str, now: datetime
) -> list[ApprovalSignature]:
    """Mark the live signatures of the reopened stages superseded (kept, never deleted); returns them."""
    superseded = list(
        ApprovalSignature.objects.filter(ladder=ladder, stage__in=reopened, superseded=False).order_by("id")
    )
    ApprovalSignature.objects.filter(pk__in=[s.pk for s in superseded]).update(
        superseded=True, superseded_at=now, superseded_reason=reason
    )
    return superseded


def _superseded_history(
    ladder: ApprovalLadder, signature: ApprovalSignature, reopened: list[ApprovalStage], *, actor, reason: str, now
) -> ApprovalHistory:
    return _history(
        ladder,
        HistoryAction.SIGNATURE_SUPERSEDED,
        stage=next(s for s in reopened if s.pk == signature.stage_id),
        actor=actor,
        now=now,
        reason=reason,
        payload={"signature_id": signature.pk, "signer": signature.signer_username},
    )


def _stages_reopen(
    *, ladder: ApprovalLadder, stage: ApprovalStage, reopened: list[ApprovalStage], actor, reason: str, now
) -> list[ApprovalHistory]:
    """The reset stage opens again; the later ones return to pending. Returns the history of what moved."""
    history = []
    for later in reopened:
        from_status = later.status
        if later.pk == stage.pk:
            _open_stage(ladder, later, now)
            action: HistoryAction | None = HistoryAction.RESET
        else:
            later.status, later.iteration = StageStatus.PENDING, ladder.iteration
            later.started_at = later.due_at = later.escalate_at = later.completed_at = None
            later.overdue_at = later.escalated_at = None
            action = HistoryAction.RETURNED_TO_PENDING if from_status != StageStatus.PENDING else None
        if action is not None:
            history.append(
                _history(
                    ladder,
                    action,
                    stage=later,
                    actor=actor,
                    now=now,
                    from_status=from_status,
                    to_status=later.status,
                    reason=reason,
                )
            )
    ApprovalStage.objects.bulk_update(reopened, _OPENED_STAGE_FIELDS)
    return history
