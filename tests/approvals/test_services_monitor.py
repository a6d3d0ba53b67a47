import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from approvals.models import ApprovalHistory, ApprovalStage
from approvals.services.monitor import INCONSISTENCY_AUDIT_ACTION, sla_monitor_run
from approvals.tasks import monitor_narrative_approval_slas
from exports.models import ExecutionEvent, NarrativeExport
from governance.models import AuditEvent

pytestmark = pytest.mark.django_db
OVERDUE = "narrative_export.approval.stage_overdue"
ESCALATED = "narrative_export.approval.stage_escalated"


def count(event_type):
    return ExecutionEvent.objects.filter(event_type=event_type).count()


def push_back(export, *, hours: float):
    """Pretend the active stage started long ago: due and escalation dates move into the past."""
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    shift = timedelta(hours=hours)
    ApprovalStage.objects.filter(pk=stage.pk).update(due_at=stage.due_at - shift, escalate_at=stage.escalate_at - shift)
    return stage


def test_nothing_due_nothing_happens(export):
    report = sla_monitor_run()
    assert (report.overdue, report.escalated) == (0, 0)
    assert count(OVERDUE) == 0


def test_overdue_is_marked_once_and_the_second_run_emits_nothing(export):
    stage = push_back(export, hours=25)
    first = sla_monitor_run()
    assert (first.overdue, first.escalated) == (1, 0)
    stage.refresh_from_db()
    assert stage.overdue_at is not None and stage.escalated_at is None
    assert count(OVERDUE) == 1
    assert AuditEvent.objects.filter(action=OVERDUE, object_id=str(export.pk)).count() == 1
    assert ApprovalHistory.objects.filter(action="overdue", stage=stage).count() == 1
    second = sla_monitor_run()
    assert (second.overdue, second.escalated) == (0, 0)
    assert count(OVERDUE) == 1


def test_escalation_emails_role_members_and_the_governance_address(
    export, crew, settings, django_capture_on_commit_callbacks
):
    settings.GOVERNANCE_ESCALATION_EMAIL = "ops@example.org"
    push_back(export, hours=49)
    with django_capture_on_commit_callbacks(execute=True):
        report = sla_monitor_run()
    assert (report.overdue, report.escalated, report.emails) == (1, 1, 1)
    assert count(ESCALATED) == 1
    (message,) = mail.outbox
    assert set(message.to) == {"ops@example.org", crew.reviewer.email, crew.reviewer2.email}
    assert f"export {export.pk}" in message.subject
    payload = ExecutionEvent.objects.get(event_type=ESCALATED).payload
    assert payload["stage_name"] == "Scientific review" and payload["minutes_overdue"] >= 25 * 60
    with django_capture_on_commit_callbacks(execute=True):
        sla_monitor_run()
    assert len(mail.outbox) == 1 and count(ESCALATED) == 1


def test_the_scheduled_task_runs_the_monitor(export):
    push_back(export, hours=25)
    assert monitor_narrative_approval_slas.delay().get()["overdue"] == 1


def test_delegating_with_a_new_due_date_rearms_the_markers(export, crew):
    from approvals.services.ladders import stage_delegate

    stage = push_back(export, hours=25)
    sla_monitor_run()
    stage_delegate(
        export_id=export.pk,
        stage_id=stage.pk,
        actor=crew.operator,
        assignee="rev2",
        reason="More time",
        due_at=timezone.now() + timedelta(hours=1),
    )
    assert sla_monitor_run().overdue == 0
    push_back(export, hours=2)
    assert sla_monitor_run().overdue == 1
    assert count(OVERDUE) == 2


def test_many_stages_are_marked_in_batches(ladder_execution, crew, snapshot, django_assert_max_num_queries):
    from tests.approvals.factories import export_with_ladder

    exports = [export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot) for _ in range(6)]
    for export in exports:
        push_back(export, hours=25)
    with django_assert_max_num_queries(60):
        report = sla_monitor_run(batch_size=4)
    assert report.overdue == 6


def test_an_inconsistency_seen_in_two_consecutive_cycles_is_reported_once(
    export, settings, django_capture_on_commit_callbacks
):
    NarrativeExport.objects.filter(pk=export.pk).update(status="queued")
    first = sla_monitor_run()
    assert first.inconsistencies == 1 and first.reported == 0
    log = settings.PROBLEMS_DIR / "enforcement.log"
    assert not log.exists()
    with django_capture_on_commit_callbacks(execute=True):
        second = sla_monitor_run()
    assert second.reported == 1
    (line,) = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["kind"] == "packaging_while_stage_open" and entry["export_id"] == export.pk
    assert AuditEvent.objects.filter(action=INCONSISTENCY_AUDIT_ACTION).count() == 1
    assert sla_monitor_run().reported == 0
    assert len(log.read_text().splitlines()) == 1


def test_a_transient_inconsistency_is_not_reported(export, settings):
    NarrativeExport.objects.filter(pk=export.pk).update(status="queued")
    sla_monitor_run()
    NarrativeExport.objects.filter(pk=export.pk).update(status="awaiting_approval")
    sla_monitor_run()
    NarrativeExport.objects.filter(pk=export.pk).update(status="queued")
    assert sla_monitor_run().reported == 0
    assert not (settings.PROBLEMS_DIR / "enforcement.log").exists()


def test_a_stored_state_naming_another_stage_is_an_inconsistency(export):
    state = {**export.packaging_queue_state, "pending_stage": {"id": 424242, "index": 9, "name": "x"}}
    NarrativeExport.objects.filter(pk=export.pk).update(packaging_queue_state=state)
    sla_monitor_run()
    report = sla_monitor_run()
    assert report.reported == 1
    entry = AuditEvent.objects.get(action=INCONSISTENCY_AUDIT_ACTION)
    assert entry.payload["kind"] == "queue_state_names_another_stage"


def test_consistent_ladders_report_nothing(export, crew):
    sla_monitor_run()
    assert sla_monitor_run().inconsistencies == 0
