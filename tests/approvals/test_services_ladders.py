from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.choices import HistoryAction, LadderStatus, QueueStatus, StageStatus
from approvals.guardrails import (
    dispatch_export_for_packaging,
    packaging_gate,
    record_packaging_queue_state,
    verify_export_packaging_guardrails,
)
from approvals.models import ApprovalHistory, ApprovalSignature, ApprovalStage, SignatureAttempt
from approvals.services.ladders import stage_decide, stage_delegate, stage_reset
from approvals.services.signing import LOCKOUT_AUDIT_ACTION
from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from exports.events import EventType
from exports.models import ExecutionEvent, NarrativeExport
from governance.models import AuditEvent
from tests.approvals.factories import PASSWORD, export_with_ladder
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def stages_of(export):
    return list(ApprovalStage.objects.filter(ladder__export=export).order_by("index"))


def active(export):
    return next(s for s in stages_of(export) if s.status == StageStatus.IN_PROGRESS)


def approve(export, user, **overrides):
    arguments = {
        "export_id": export.pk,
        "actor": user,
        "username": user.username,
        "decision": "approve",
        "password": PASSWORD,
        "meaning": "",
        "comment": "",
    } | overrides
    if "expected_stage_id" not in overrides:
        arguments["expected_stage_id"] = active(export).pk
    return stage_decide(**arguments)


def sign_all(export, crew):
    for role in ("reviewer", "qa_approver", "compliance"):
        outcome = approve(export, crew.signer_for(role))
    return outcome


def events(export, event_type):
    return list(ExecutionEvent.objects.filter(execution=export.execution, event_type=event_type).order_by("sequence"))


def test_ladder_is_built_from_the_pinned_snapshot(export, snapshot):
    stages = stages_of(export)
    assert [(s.name, s.required_role, s.sla_hours) for s in stages] == [
        ("Scientific review", "reviewer", 24),
        ("QA approval", "qa_approver", 48),
        ("Compliance sign-off", "compliance", 72),
    ]
    assert [s.status for s in stages] == ["in_progress", "pending", "pending"]
    first = stages[0]
    assert first.due_at == first.started_at + timedelta(hours=24)
    assert first.escalate_at == first.due_at + timedelta(hours=24)
    assert export.ladder.template_snapshot_id == snapshot.pk
    assert len(events(export, "narrative_export.approval.stage_started")) == 1
    assert export.packaging_queue_state["status"] == QueueStatus.AWAITING_APPROVAL
    assert export.packaging_queue_state["pending_stage"]["id"] == first.pk
    assert export.packaging_queue_state["forecast"]
    assert len(events(export, EventType.PACKAGING_AWAITING_APPROVAL)) == 1


def test_without_a_snapshot_the_default_ladder_of_settings_applies(ladder_execution, crew):
    export = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=None)
    assert [s.required_role for s in stages_of(export)] == ["reviewer", "qa_approver", "compliance"]


def test_signing_every_stage_finalizes_and_dispatches(export, crew, packaging_calls):
    outcome = sign_all(export, crew)
    assert outcome.dispatched is True
    assert outcome.ladder.status == LadderStatus.APPROVED
    assert outcome.export.status == "queued"
    assert packaging_calls == [export.pk]
    signatures = list(ApprovalSignature.objects.filter(ladder__export=export).order_by("stage_index"))
    assert [s.signer_username for s in signatures] == ["rev", "qa", "comp"]
    assert [s.meaning for s in signatures] == ["Reviewed", "Approved for release", "Compliant"]
    assert {s.narrative_digest for s in signatures} == {export.narrative_digest}
    assert all(s.printed_name == crew.signer_for(s.required_role).get_full_name() for s in signatures)
    assert all(s.signed_at.utcoffset() == timedelta(0) for s in signatures)
    assert len(events(export, "narrative_export.approval.stage_completed")) == 3
    assert len(events(export, "narrative_export.approval.finalized")) == 1
    assert AuditEvent.objects.filter(action="narrative_export.approval.finalized", object_id=str(export.pk)).exists()
    actions = list(ApprovalHistory.objects.filter(ladder__export=export).values_list("action", flat=True))
    assert actions == [
        "stage_started",
        "approved",
        "stage_started",
        "approved",
        "stage_started",
        "approved",
        "finalized",
    ]
    assert verify_export_packaging_guardrails(NarrativeExport.objects.get(pk=export.pk)).allowed


def test_meaning_and_comment_given_by_the_signer_are_kept(export, crew):
    outcome = approve(export, crew.reviewer, meaning="Reviewed for scientific accuracy", comment="Looks right.")
    assert outcome.signature.meaning == "Reviewed for scientific accuracy"
    assert outcome.signature.comment == "Looks right."


def test_a_stale_expected_stage_is_a_conflict(export, crew):
    first = active(export)
    approve(export, crew.reviewer)
    with pytest.raises(Conflict) as caught:
        approve(export, crew.qa, expected_stage_id=first.pk)
    assert caught.value.code == "stale_stage"
    assert ApprovalSignature.objects.count() == 1


def test_signing_needs_the_stage_role(export, crew):
    with pytest.raises(PermissionDenied) as caught:
        approve(export, crew.qa)
    assert caught.value.code == "not_permitted_to_sign"


def test_the_author_never_signs_their_own_export(export, crew, team):
    member_of(team, "reviewer", username="author")
    with pytest.raises(PermissionDenied) as caught:
        approve(export, crew.author)
    assert caught.value.code == "separation_of_duties"


def test_nobody_signs_two_stages_of_one_iteration(export, crew, team):
    both = member_of(team, "reviewer", "qa_approver", username="both")
    approve(export, both)
    with pytest.raises(PermissionDenied) as caught:
        approve(export, both)
    assert caught.value.code == "separation_of_duties"


def test_reject_needs_a_comment_and_ends_the_ladder(export, crew):
    with pytest.raises(ValidationFailed):
        approve(export, crew.reviewer, decision="reject")
    outcome = approve(export, crew.reviewer, decision="reject", comment="Plate 3 data missing.")
    assert outcome.ladder.status == LadderStatus.REJECTED
    assert outcome.export.status == "rejected"
    assert outcome.signature.decision == "reject" and outcome.signature.meaning == "Rejected"
    assert outcome.export.packaging_queue_state["status"] == QueueStatus.REJECTED
    assert len(events(export, "narrative_export.approval.rejected")) == 1
    with pytest.raises(Conflict) as caught:
        approve(export, crew.qa, expected_stage_id=stages_of(export)[1].pk)
    assert caught.value.code == "ladder_closed"
    assert dispatch_export_for_packaging(export).queued is False


def test_a_narrative_without_digest_cannot_be_signed(export, crew):
    NarrativeExport.objects.filter(pk=export.pk).update(narrative_digest="")
    with pytest.raises(Conflict) as caught:
        approve(export, crew.reviewer)
    assert caught.value.code == "narrative_not_rendered"


def test_wrong_password_is_counted_and_five_lock_the_signer_out(export, crew):
    from approvals.services.signing import SignatureInvalid, SignerLockedOut

    for attempt in range(1, 6):
        with pytest.raises(SignatureInvalid) as caught:
            approve(export, crew.reviewer, password="wrong")
        assert caught.value.details["failures"] == attempt
    assert AuditEvent.objects.filter(action=LOCKOUT_AUDIT_ACTION, actor_username="rev").count() == 1
    with pytest.raises(SignerLockedOut):
        approve(export, crew.reviewer)
    assert not ApprovalSignature.objects.exists()
    assert SignatureAttempt.objects.filter(user=crew.reviewer, succeeded=False, refused_locked=False).count() == 5


def test_failures_older_than_the_window_do_not_count(export, crew):
    from approvals.services.signing import SignatureInvalid

    for _ in range(5):
        with pytest.raises(SignatureInvalid):
            approve(export, crew.reviewer, password="wrong")
    SignatureAttempt.objects.update(created_at=timezone.now() - timedelta(minutes=16))
    assert approve(export, crew.reviewer).signature.signer_username == "rev"


def test_delegation_records_who_from_whom_to_whom_why_and_when(export, crew):
    stage = active(export)
    due = timezone.now() + timedelta(hours=5)
    stage_delegate(
        export_id=export.pk, stage_id=stage.pk, actor=crew.operator, assignee="rev2", reason="Leave", due_at=due
    )
    stage.refresh_from_db()
    assert stage.assignee == crew.reviewer2 and stage.due_at == due
    row = ApprovalHistory.objects.get(action=HistoryAction.DELEGATED)
    assert (row.actor, row.from_assignee, row.to_assignee, row.reason) == (crew.operator, None, crew.reviewer2, "Leave")
    assert len(events(export, "narrative_export.approval.stage_delegated")) == 1
    assert approve(export, crew.reviewer2).signature.signer_username == "rev2"


@pytest.mark.parametrize(
    ("assignee", "code"),
    [("nobody", "invalid_assignee"), ("qa", "invalid_assignee"), ("outsider", "invalid_assignee")],
)
def test_delegation_only_to_members_holding_the_role(export, crew, other_team, assignee, code):
    member_of(other_team, "reviewer", username="outsider")
    with pytest.raises(NotFound) as caught:
        stage_delegate(
            export_id=export.pk, stage_id=active(export).pk, actor=crew.operator, assignee=assignee, reason="x"
        )
    assert caught.value.code == code
    assert not ApprovalHistory.objects.filter(action=HistoryAction.DELEGATED).exists()


def test_delegation_never_breaks_separation_of_duties(export, crew, team):
    member_of(team, "reviewer", username="author")
    with pytest.raises(Conflict) as caught:
        stage_delegate(
            export_id=export.pk, stage_id=active(export).pk, actor=crew.operator, assignee="author", reason="x"
        )
    assert caught.value.code == "separation_of_duties"


def test_delegation_checks_permission_stage_and_due_date(export, crew):
    stage = active(export)
    with pytest.raises(PermissionDenied):
        stage_delegate(export_id=export.pk, stage_id=stage.pk, actor=crew.auditor, assignee="rev2", reason="x")
    with pytest.raises(NotFound):
        stage_delegate(export_id=export.pk, stage_id=999999, actor=crew.operator, assignee="rev2", reason="x")
    with pytest.raises(ValidationFailed):
        stage_delegate(
            export_id=export.pk,
            stage_id=stage.pk,
            actor=crew.operator,
            assignee="rev2",
            reason="x",
            due_at=timezone.now() - timedelta(minutes=1),
        )


def test_reset_reopens_supersedes_and_bumps_the_iteration(export, crew):
    first = active(export)
    approve(export, crew.reviewer)
    approve(export, crew.qa)
    stage_reset(export_id=export.pk, stage_id=first.pk, actor=crew.admin, reason="Wrong plate map attached")
    stages = stages_of(export)
    assert [s.status for s in stages] == ["in_progress", "pending", "pending"]
    assert {s.iteration for s in stages} == {2}
    assert stages[1].due_at is None
    signatures = list(ApprovalSignature.objects.filter(ladder__export=export))
    assert len(signatures) == 2 and all(s.superseded for s in signatures)
    assert {s.superseded_reason for s in signatures} == {"Wrong plate map attached"}
    actions = list(ApprovalHistory.objects.filter(ladder__export=export).values_list("action", flat=True))
    assert actions.count("signature_superseded") == 2 and "reset" in actions and "returned_to_pending" in actions
    export.refresh_from_db()
    assert export.packaging_queue_state["iteration"] == 2
    assert len(events(export, EventType.PACKAGING_AWAITING_APPROVAL)) == 4  # one per distinct blocking state
    # The reviewer of iteration 1 may sign again: their earlier signature no longer counts.
    assert approve(export, crew.reviewer).signature.iteration == 2


def test_reset_after_queueing_blocks_packaging_and_the_worker_gate(export, crew):
    sign_all(export, crew)
    export.refresh_from_db()
    assert export.status == "queued"
    stage_reset(export_id=export.pk, stage_id=stages_of(export)[2].pk, actor=crew.compliance, reason="Recheck")
    export.refresh_from_db()
    assert export.status == "awaiting_approval"
    result = packaging_gate(export)
    assert result.allowed is False and result.gate == "approvals"
    assert result.state["pending_stage"]["index"] == 2
    assert dispatch_export_for_packaging(export).queued is False


def test_reset_rules(export, crew):
    stages = stages_of(export)
    with pytest.raises(PermissionDenied):
        stage_reset(export_id=export.pk, stage_id=stages[0].pk, actor=crew.reviewer, reason="x")
    with pytest.raises(Conflict) as caught:
        stage_reset(export_id=export.pk, stage_id=stages[2].pk, actor=crew.admin, reason="x")
    assert caught.value.code == "stage_not_started"
    with pytest.raises(NotFound):
        stage_reset(export_id=export.pk, stage_id=999999, actor=crew.admin, reason="x")
    NarrativeExport.objects.filter(pk=export.pk).update(status="packaged")
    with pytest.raises(Conflict) as caught:
        stage_reset(export_id=export.pk, stage_id=stages[0].pk, actor=crew.admin, reason="x")
    assert caught.value.code == "export_not_resettable"


def test_queue_state_repeats_emit_nothing(export):
    verdict = verify_export_packaging_guardrails(export)
    before = len(events(export, EventType.PACKAGING_AWAITING_APPROVAL))
    for _ in range(3):
        state, changed = record_packaging_queue_state(export, verdict)
        assert changed is False
    assert len(events(export, EventType.PACKAGING_AWAITING_APPROVAL)) == before
    assert set(state) >= {"status", "pending_stage", "forecast", "updated_at", "attempts"}


def test_signatures_bind_the_digest_packaging_sees(export, crew):
    sign_all(export, crew)
    NarrativeExport.objects.filter(pk=export.pk).update(narrative_digest="0" * 64, status="approved")
    export.refresh_from_db()
    verdict = verify_export_packaging_guardrails(export)
    assert verdict.allowed is False
    assert "different narrative digest" in verdict.problems[0]


def test_the_forecast_follows_due_dates_and_slas(export):
    stage = active(export)
    verdict = verify_export_packaging_guardrails(export)
    assert verdict.forecast == stage.due_at + timedelta(hours=48 + 72)
