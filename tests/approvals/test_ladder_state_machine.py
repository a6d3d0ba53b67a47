"""Property: whatever approvals, rejections, delegations, resets, dispatches and worker runs happen, by whoever,
packaging never happens while a stage is not approved, every action is in the history, and signatures are never
deleted."""

import contextlib

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from approvals.choices import HistoryAction, StageStatus
from approvals.guardrails import dispatch_export_for_packaging, verify_export_packaging_guardrails
from approvals.models import ApprovalHistory, ApprovalSignature, ApprovalStage
from approvals.services.ladders import stage_decide, stage_delegate, stage_reset
from config.errors import DossierError
from exports.models import ExportArtifact, NarrativeExport
from exports.services.packaging import PackagingOutcome, export_package
from tests.approvals.factories import PASSWORD, export_with_ladder, published_snapshot

PACKAGED: list[int] = []
USERNAMES = ["author", "rev", "rev2", "qa", "comp", "ops", "adm", "aud", "multi"]


class LadderMachine(RuleBasedStateMachine):
    context: dict = {}

    def __init__(self):
        super().__init__()
        ctx = self.context
        self.users = ctx["users"]
        self.export = export_with_ladder(
            execution=ctx["execution"], author=self.users["author"], snapshot=ctx["snapshot"]
        )
        self.stage_ids = list(
            ApprovalStage.objects.filter(ladder__export=self.export).order_by("index").values_list("pk", flat=True)
        )
        self.signature_ids: set[int] = set()
        self.expected = {HistoryAction.DELEGATED: 0, HistoryAction.RESET: 0, "decisions": 0}

    def _active_id(self):
        return (
            ApprovalStage.objects.filter(ladder__export=self.export, status=StageStatus.IN_PROGRESS)
            .values_list("pk", flat=True)
            .first()
        )

    @rule(username=st.sampled_from(USERNAMES), stale=st.booleans(), reject=st.booleans())
    def decide(self, username, stale, reject):
        self._decide(username, stale=stale, reject=reject)

    def _decide(self, username, *, stale, reject):
        expected_stage = self.stage_ids[0] if stale else (self._active_id() or self.stage_ids[-1])
        try:
            stage_decide(
                export_id=self.export.pk,
                actor=self.users[username],
                username=self.users[username].username,
                decision="reject" if reject else "approve",
                password=PASSWORD,
                comment="no" if reject else "",
                expected_stage_id=expected_stage,
            )
        except DossierError:
            return
        self.expected["decisions"] += 1

    @rule(use_multi=st.booleans())
    def sign_as_a_role_holder(self, use_multi):
        """Steer towards complete ladders so packaging is actually exercised."""
        stage = ApprovalStage.objects.filter(ladder__export=self.export, status=StageStatus.IN_PROGRESS).first()
        if stage is None:
            return
        holder = {"reviewer": "rev", "qa_approver": "qa", "compliance": "comp"}[stage.required_role]
        self._decide("multi" if use_multi else holder, stale=False, reject=False)

    @rule(actor=st.sampled_from(USERNAMES), assignee=st.sampled_from(USERNAMES), index=st.integers(0, 2))
    def delegate(self, actor, assignee, index):
        try:
            stage_delegate(
                export_id=self.export.pk,
                stage_id=self.stage_ids[index],
                actor=self.users[actor],
                assignee=assignee,
                reason="rotation",
            )
        except DossierError:
            return
        self.expected[HistoryAction.DELEGATED] += 1

    @rule(actor=st.sampled_from(USERNAMES), index=st.integers(0, 2))
    def reset(self, actor, index):
        try:
            stage_reset(
                export_id=self.export.pk, stage_id=self.stage_ids[index], actor=self.users[actor], reason="redo"
            )
        except DossierError:
            return
        self.expected[HistoryAction.RESET] += 1

    @rule()
    def dispatch(self):
        with contextlib.suppress(DossierError):
            dispatch_export_for_packaging(self.export)

    @precondition(lambda self: NarrativeExport.objects.filter(pk=self.export.pk, status="queued").exists())
    @rule()
    def worker_runs(self):
        allowed_before = verify_export_packaging_guardrails(NarrativeExport.objects.get(pk=self.export.pk)).allowed
        outcome = export_package(export_id=self.export.pk)
        if outcome == PackagingOutcome.PACKAGED:
            assert allowed_before
            PACKAGED.append(self.export.pk)

    @invariant()
    def packaging_only_when_every_stage_is_approved(self):
        export = NarrativeExport.objects.get(pk=self.export.pk)
        if (
            export.status in ("queued", "packaging", "packaged")
            or ExportArtifact.objects.filter(export=export).exists()
        ):
            statuses = set(ApprovalStage.objects.filter(ladder__export=export).values_list("status", flat=True))
            assert statuses == {StageStatus.APPROVED}, (export.status, statuses)

    @invariant()
    def every_action_is_in_the_history(self):
        history = ApprovalHistory.objects.filter(ladder__export=self.export)
        decisions = history.filter(action__in=[HistoryAction.APPROVED, HistoryAction.REJECTED]).count()
        assert decisions == self.expected["decisions"]
        assert decisions == ApprovalSignature.objects.filter(ladder__export=self.export).count()
        assert history.filter(action=HistoryAction.DELEGATED).count() == self.expected[HistoryAction.DELEGATED]
        assert history.filter(action=HistoryAction.RESET).count() == self.expected[HistoryAction.RESET]

    @invariant()
    def signatures_are_never_deleted(self):
        ids = set(ApprovalSignature.objects.filter(ladder__export=self.export).values_list("pk", flat=True))
        assert ids >= self.signature_ids
        self.signature_ids = ids
        live = ApprovalSignature.objects.filter(ladder__export=self.export, superseded=False)
        assert live.count() == len(set(live.values_list("stage_id", flat=True)))


@pytest.mark.django_db
def test_ladder_rules_hold_under_any_sequence_of_actions(team, crew, ladder_execution):
    from tests.factories import member_of

    users = {name: getattr(crew, attr) for name, attr in [
        ("author", "author"), ("rev", "reviewer"), ("rev2", "reviewer2"), ("qa", "qa"), ("comp", "compliance"),
        ("ops", "operator"), ("adm", "admin"), ("aud", "auditor"),
    ]}  # fmt: skip
    users["multi"] = member_of(team, "reviewer", "qa_approver", "compliance", username="multi")
    LadderMachine.context = {"users": users, "execution": ladder_execution, "snapshot": published_snapshot()}
    run_state_machine_as_test(
        LadderMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            # The same sequences on every run, so CI is reproducible and the "reached packaging" check is stable.
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    assert PACKAGED, "no sequence reached packaging; the property was not exercised"
