"""Recording escalation outcomes: the service, the API and the dashboard row's form (docs/escalations.md)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import ApprovalStage, StageEscalation
from exports.events import EventType
from exports.models import ExecutionEvent
from governance.models import AuditEvent
from governance.services.audit import text_digest
from tests.approvals.factories import export_with_ladder
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def url(export) -> str:
    return f"/api/governance/exports/{export.pk}/escalations"


@pytest.fixture
def overdue(export):
    """The export's first stage, in progress and two hours past due."""
    stage = ApprovalStage.objects.get(ladder__export=export, index=0)
    ApprovalStage.objects.filter(pk=stage.pk).update(due_at=timezone.now() - timedelta(hours=2))
    return stage


def body(stage, **changes) -> dict:
    return {"stage_id": stage.pk, "contacted": "rev by phone", "outcome": "acknowledged", **changes}


def test_an_operator_records_an_outcome_on_the_timeline_and_the_audit_trail(client_for, crew, export, overdue):
    next_check = (timezone.now() + timedelta(hours=4)).replace(microsecond=0)
    response = client_for(crew.operator).post(
        url(export), body(overdue, next_check_at=next_check.isoformat()), format="json"
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["export_id"], data["stage_id"], data["outcome"], data["contacted"]) == (
        export.pk,
        overdue.pk,
        "acknowledged",
        "rev by phone",
    )
    assert data["outcome_label"] == "Acknowledged: will sign" and data["recorded_by"] == "ops"
    event = ExecutionEvent.objects.get(execution=export.execution, event_type=EventType.ESCALATION_RECORDED)
    assert event.sequence == data["timeline_sequence"]
    assert event.payload["outcome"] == "acknowledged" and event.payload["stage_id"] == overdue.pk
    assert event.payload["next_check_at"] == next_check.isoformat().replace("+00:00", "Z")
    audit = AuditEvent.objects.get(action=EventType.ESCALATION_RECORDED)
    assert audit.payload["sequence"] == event.sequence and audit.payload["contacted"] == text_digest("rev by phone")
    assert StageEscalation.objects.get().next_check_at == next_check


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"outcome": "sorted"}, "outcome"),
        ({"contacted": ""}, "contacted"),
        ({"next_check_at": "yesterday"}, "next_check_at"),
        ({"stage_id": "x"}, "stage_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client_for, crew, export, overdue, changes, field):
    response = client_for(crew.operator).post(url(export), body(overdue, **changes), format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]["fields"]
    assert not StageEscalation.objects.exists()


def test_a_next_check_in_the_past_is_refused(client_for, crew, export, overdue):
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = client_for(crew.operator).post(url(export), body(overdue, next_check_at=past), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"] == {"next_check_at": ["Must be later than now."]}


def test_a_stage_of_another_export_is_refused(client_for, crew, export, overdue, ladder_execution, snapshot):
    other = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    foreign_stage = ApprovalStage.objects.get(ladder__export=other, index=0)
    response = client_for(crew.operator).post(url(export), body(foreign_stage), format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "stage_not_found"


def test_a_stage_not_waiting_for_a_signature_is_a_conflict(client_for, crew, export, overdue):
    pending = ApprovalStage.objects.get(ladder__export=export, index=1)
    response = client_for(crew.operator).post(url(export), body(pending), format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "stage_not_open"


def test_roles_and_teams(client_for, crew, export, overdue, other_team):
    assert client_for(crew.auditor).post(url(export), body(overdue), format="json").status_code == 403
    assert client_for(crew.author).post(url(export), body(overdue), format="json").status_code == 403
    outsider = member_of(other_team, "operator", username="beta-ops")
    response = client_for(outsider).post(url(export), body(overdue), format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "export_not_found"
    assert client_for(crew.compliance).post(url(export), body(overdue), format="json").status_code == 201
    assert StageEscalation.objects.count() == 1


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_row_records_an_outcome_and_shows_the_last_one(crew, export, overdue):
    client = logged_in(crew.operator)
    html = client.get("/governance/dashboard").content.decode()
    action = f"/governance/dashboard/exports/{export.pk}/stages/{overdue.pk}/escalations"
    assert f'action="{action}"' in html and 'data-testid="last-escalation"' not in html

    prefix = f"e{overdue.pk}"
    response = client.post(action, {f"{prefix}-contacted": "QA lead, e-mail", f"{prefix}-outcome": "no_response"})
    assert response.status_code == 302 and response["Location"].startswith("/governance/dashboard")
    panels = client.get("/governance/dashboard/panels").content.decode()
    assert "Last escalation: <strong>No response</strong> — QA lead, e-mail" in panels
    assert ExecutionEvent.objects.filter(event_type=EventType.ESCALATION_RECORDED).count() == 1


def test_the_dashboard_form_reports_refusals_without_recording(crew, export, overdue):
    client = logged_in(crew.operator)
    action = f"/governance/dashboard/exports/{export.pk}/stages/{overdue.pk}/escalations"
    prefix = f"e{overdue.pk}"
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        action,
        {f"{prefix}-contacted": "x", f"{prefix}-outcome": "blocked", f"{prefix}-next_check_at": past},
        follow=True,
    )
    assert response.status_code == 200
    assert "The escalation outcome was not recorded: The next check must be in the future." in response.content.decode()
    assert not StageEscalation.objects.exists()


def test_readers_see_neither_escalate_nor_the_form_and_may_not_post(crew, export, overdue):
    client = logged_in(crew.auditor)
    html = client.get("/governance/dashboard").content.decode()
    assert f'data-stage-id="{overdue.pk}"' in html
    assert "Record outcome" not in html and "mailto:" not in html
    action = f"/governance/dashboard/exports/{export.pk}/stages/{overdue.pk}/escalations"
    prefix = f"e{overdue.pk}"
    response = client.post(action, {f"{prefix}-contacted": "x", f"{prefix}-outcome": "blocked"}, follow=True)
    assert "You need one of the roles admin, compliance, operator in this team to record escalations." in (
        response.content.decode()
    )
    assert not StageEscalation.objects.exists()
