"""Packaging guardrails (docs/approvals.md, "Guardrails"): packaging waits until every stage of the current ladder
iteration is approved.

``dispatch_export_for_packaging`` is the only way approvals enqueue packaging; the API, the packaging worker (via
``packaging_gate``), the SLA monitor and the CLI all go through it, so the rule is checked in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals.choices import BLOCKING_QUEUE_STATUSES, Decision, LadderStatus, QueueStatus, StageStatus
from approvals.models import ApprovalLadder, ApprovalSignature, ApprovalStage
from approvals.selectors import export_lock, ladder_lock, ladder_stages, live_signatures
from config.errors import NotFound
from exports.events import EventType
from exports.hooks import GateResult
from exports.models import NarrativeExport
from exports.queue_state import QueueState
from exports.services.transitions import export_queue_state_record
from governance.ladder import stage_due_at

GATE_NAME = "approvals"


@dataclass(frozen=True)
class GuardrailVerdict:
    allowed: bool
    status: str
    reason: str
    pending_stage: dict[str, Any] | None = None
    forecast: datetime | None = None
    iteration: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    def queue_state(self, *, attempts: int = 0, now: datetime | None = None) -> QueueState:
        """The compact queue state recorded on the export."""
        return QueueState.for_guardrail(
            status=self.status,
            pending_stage=self.pending_stage,
            forecast=self.forecast,
            iteration=self.iteration,
            attempts=attempts,
            now=now,
        )

    def gate_state(self) -> dict[str, Any]:
        """What the packaging worker merges into the queue state it writes when a gate blocks it: the blocking
        state without ``status`` (the worker's own), so the guardrail recognizes it as the same state."""
        state = self.queue_state()
        return {
            "guardrail_status": state.guardrail_status,
            "pending_stage": state.pending_stage,
            "forecast": state.forecast,
            "iteration": state.iteration,
        }


def forecast_ladder_clearance(stages: Sequence[ApprovalStage], *, now: datetime | None = None) -> datetime | None:
    """When the ladder is projected to clear: the active stage's due date (or now, if overdue), then each
    pending stage's SLA in turn. None when nothing is open or the ladder was rejected."""
    now = now or timezone.now()
    if any(stage.status == StageStatus.REJECTED for stage in stages):
        return None
    open_stages = [stage for stage in stages if stage.status in (StageStatus.PENDING, StageStatus.IN_PROGRESS)]
    if not open_stages:
        return None
    at = now
    for stage in sorted(open_stages, key=lambda s: s.index):
        if stage.status == StageStatus.IN_PROGRESS and stage.due_at is not None:
            at = max(at, stage.due_at)
        else:
            at = stage_due_at(at, stage.sla_hours)
    return at


def _stage_ref(stage: ApprovalStage) -> dict[str, Any]:
    return {"id": stage.pk, "index": stage.index, "name": stage.name, "required_role": stage.required_role}


def guardrail_verdict(
    *,
    export: NarrativeExport,
    ladder: ApprovalLadder | None,
    stages: Sequence[ApprovalStage],
    signatures: Iterable[ApprovalSignature],
    now: datetime | None = None,
) -> GuardrailVerdict:
    """The rule itself, on loaded rows: every stage approved, each by a live signature bound to the export's
    current narrative digest."""
    if ladder is None:
        return GuardrailVerdict(False, QueueStatus.NO_LADDER, "The export has no approval ladder.")
    if ladder.status == LadderStatus.REJECTED or any(s.status == StageStatus.REJECTED for s in stages):
        return _rejected_verdict(ladder, stages)
    unapproved = [s for s in sorted(stages, key=lambda s: s.index) if s.status != StageStatus.APPROVED]
    if unapproved or not stages:
        return _awaiting_verdict(ladder, unapproved, forecast=forecast_ladder_clearance(stages, now=now))
    problems = _signature_problems(export, stages, signatures)
    if problems or ladder.status != LadderStatus.APPROVED:
        return GuardrailVerdict(
            False,
            QueueStatus.AWAITING_APPROVAL,
            "The signatures do not cover the narrative being packaged.",
            pending_stage=_stage_ref(stages[0]),
            iteration=ladder.iteration,
            problems=tuple(problems) or ("the ladder is not finalized",),
        )
    return GuardrailVerdict(True, QueueStatus.READY, "Every stage is approved.", iteration=ladder.iteration)


def _rejected_verdict(ladder: ApprovalLadder, stages: Sequence[ApprovalStage]) -> GuardrailVerdict:
    rejected = next((s for s in stages if s.status == StageStatus.REJECTED), None)
    return GuardrailVerdict(
        False,
        QueueStatus.REJECTED,
        "The ladder was rejected; a new export version starts a new ladder.",
        pending_stage=_stage_ref(rejected) if rejected else None,
        iteration=ladder.iteration,
    )


def _awaiting_verdict(
    ladder: ApprovalLadder, unapproved: list[ApprovalStage], *, forecast: datetime | None
) -> GuardrailVerdict:
    """Waiting for the active stage (or the first unapproved one)."""
    pending = next(
        (s for s in unapproved if s.status == StageStatus.IN_PROGRESS), unapproved[0] if unapproved else None
    )
    return GuardrailVerdict(
        False,
        QueueStatus.AWAITING_APPROVAL,
        f"Stage '{pending.name}' is {pending.get_status_display().lower()}."
        if pending
        else "The ladder has no stages.",
        pending_stage=_stage_ref(pending) if pending else None,
        forecast=forecast,
        iteration=ladder.iteration,
    )


def _signature_problems(
    export: NarrativeExport, stages: Sequence[ApprovalStage], signatures: Iterable[ApprovalSignature]
) -> list[str]:
    """Stages without a live approving signature bound to the export's current narrative digest."""
    approving = {sig.stage_id: sig for sig in signatures if not sig.superseded and sig.decision == Decision.APPROVE}
    problems = []
    for stage in stages:
        signature = approving.get(stage.pk)
        if signature is None:
            problems.append(f"stage {stage.index + 1} has no live approving signature")
        elif signature.narrative_digest != export.narrative_digest:
            problems.append(f"stage {stage.index + 1} was signed for a different narrative digest")
    return problems


def verify_export_packaging_guardrails(export: NarrativeExport, *, lock: bool = False) -> GuardrailVerdict:
    """Whether ``export`` may be packaged now. With ``lock=True`` (inside a transaction that already holds the
    export row) the ladder row is read ``FOR UPDATE`` so no approval or reset can interleave."""
    if lock:
        ladder = ladder_lock(export=export)
    else:
        ladder = ApprovalLadder.objects.filter(export_id=export.pk).first()
    if ladder is None:
        return guardrail_verdict(export=export, ladder=None, stages=[], signatures=[])
    return guardrail_verdict(
        export=export, ladder=ladder, stages=ladder_stages(ladder=ladder), signatures=live_signatures(ladder=ladder)
    )


@transaction.atomic(savepoint=False)  # writes only, nothing to recover from
def record_packaging_queue_state(
    export: NarrativeExport, state: GuardrailVerdict | QueueState, *, actor=None, locked: bool = False
) -> tuple[dict[str, Any], bool]:
    """Persist the compact queue state; emit ``narrative_export.packaging.awaiting_approval`` once per distinct
    blocking state. A repeat of the stored state changes nothing and emits nothing. Returns (state, changed).

    ``locked=True`` says ``export`` is the caller's own row lock, read in this transaction and kept current: it
    is used as it is instead of being locked and read again."""
    row = export if locked else export_lock(export_id=export.pk)
    if isinstance(state, GuardrailVerdict):
        state = state.queue_state(attempts=row.packaging_attempts)
    announce = EventType.PACKAGING_AWAITING_APPROVAL if state.status in BLOCKING_QUEUE_STATUSES else None
    return export_queue_state_record(export=row, state=state, actor=actor, announce=announce, mirror=export)


def packaging_gate(export: NarrativeExport) -> GateResult:
    """``exports``' packaging gate (settings.DOSSIER_PACKAGING_GATES). The worker calls it holding the export's
    row lock; the ladder is read under its own lock here, so a reset committed before this point is seen and a
    reset after it waits until the worker's transaction ends."""
    verdict = verify_export_packaging_guardrails(export, lock=True)
    if not verdict.allowed:
        record_packaging_queue_state(export, verdict)
    return GateResult(allowed=verdict.allowed, gate=GATE_NAME, reason=verdict.reason, state=verdict.gate_state())


@dataclass(frozen=True)
class DispatchOutcome:
    queued: bool
    verdict: GuardrailVerdict
    export: NarrativeExport

    @property
    def pending_stage(self) -> dict[str, Any] | None:
        return self.verdict.pending_stage


@dataclass(frozen=True)
class HeldLadder:
    """An export's ladder, its stages and its live signatures as the caller's transaction holds them: read under
    the export and ladder locks and kept current since (the signing path, which has just written them)."""

    ladder: ApprovalLadder
    stages: Sequence[ApprovalStage]
    signatures: Sequence[ApprovalSignature]


def dispatch_export_for_packaging(
    export: NarrativeExport, *, actor=None, held: HeldLadder | None = None
) -> DispatchOutcome:
    """The single path to enqueue packaging: check the guardrail under the ladder lock, record the queue state,
    and hand the export to ``exports``' packaging primitive (which enqueues the task on commit and refuses, with
    a 409, exports that are packaging or already packaged).

    ``held``: ``export`` is the caller's row lock and ``held`` its ladder under lock, both current in the
    caller's transaction; the guardrail is decided on them as they are, without reading anything again."""
    if held is not None:
        verdict = guardrail_verdict(export=export, ladder=held.ladder, stages=held.stages, signatures=held.signatures)
        with transaction.atomic(savepoint=False):  # inside the caller's transaction: writes only
            return _dispatch_locked(export, verdict, actor=actor)
    with transaction.atomic():
        locked = export_lock(export_id=export.pk)
        return _dispatch_locked(locked, verify_export_packaging_guardrails(locked, lock=True), actor=actor)


def _dispatch_locked(locked: NarrativeExport, verdict: GuardrailVerdict, *, actor) -> DispatchOutcome:
    """Record a blocking verdict, or queue the export from the guardrail's cleared state (no pending stage, no
    forecast); ``locked`` is kept current either way."""
    from exports.services.packaging import packaging_enqueue

    if not verdict.allowed:
        record_packaging_queue_state(locked, verdict, actor=actor, locked=True)
        return DispatchOutcome(False, verdict, locked)
    cleared = verdict.queue_state(attempts=locked.packaging_attempts)
    packaging_enqueue(export=locked, actor=actor, locked=True, cleared=cleared)
    return DispatchOutcome(True, verdict, locked)


def dispatch_export_for_packaging_by_id(export_id: int, *, actor=None) -> DispatchOutcome:
    export = NarrativeExport.objects.filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"Export {export_id} was not found.", code="export_not_found")
    return dispatch_export_for_packaging(export, actor=actor)
