from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalStage
from approvals.services.ladders import stage_decide
from exports.models import NarrativeExport
from tests.approvals.factories import PASSWORD, export_with_ladder
from tests.factories import member_of

pytestmark = pytest.mark.django_db
LIST = "/api/governance/exports"


def sign_all(export, crew):
    for user in (crew.reviewer, crew.qa, crew.compliance):
        stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
        stage_decide(
            export_id=export.pk,
            actor=user,
            username=user.username,
            decision="approve",
            password=PASSWORD,
            expected_stage_id=stage.pk,
        )


def test_operator_lists_exports_with_ladders_and_filters(client_for, crew, export, ladder_execution, snapshot):
    second = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    ApprovalStage.objects.filter(ladder__export=second, index=0).update(due_at=timezone.now() - timedelta(hours=1))
    client = client_for(crew.operator)
    data = client.get(LIST).json()
    assert data["count"] == 2
    row = next(r for r in data["results"] if r["id"] == export.pk)
    assert row["team"] == "alpha" and row["template"]["template_key"] == "standard-release"
    assert row["ladder"]["stages"][0]["required_role"] == "reviewer"
    assert row["packaging_queue_state"]["status"] == "awaiting_approval"
    assert [r["id"] for r in client.get(LIST, {"overdue": "true"}).json()["results"]] == [second.pk]
    assert client.get(LIST, {"status": "awaiting_approval"}).json()["count"] == 2
    assert client.get(LIST, {"status": "packaged"}).json()["count"] == 0
    assert client.get(LIST, {"team": "beta"}).json()["count"] == 0
    assert client.get(LIST, {"template": "standard-release"}).json()["count"] == 2
    assert client.get(LIST, {"guardrail": "blocked"}).json()["count"] == 2
    assert client.get(LIST, {"guardrail": "ready"}).json()["count"] == 0


def test_list_has_a_fixed_number_of_queries(
    client_for, crew, export, ladder_execution, snapshot, django_assert_max_num_queries
):
    for _ in range(5):
        export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    client = client_for(crew.operator)
    with django_assert_max_num_queries(8):
        assert client.get(LIST).json()["count"] == 6


def test_bad_filter_is_400(client_for, crew, export):
    response = client_for(crew.operator).get(LIST, {"status": "sleeping"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_filter"
    assert client_for(crew.operator).get(LIST, {"overdue": "perhaps"}).status_code == 400


def test_users_without_an_operator_role_are_refused(client_for, crew, export):
    assert client_for(crew.reviewer).get(LIST).status_code == 403


def test_detail_carries_signatures_and_history(client_for, crew, export, other_team):
    sign_all(export, crew)
    data = client_for(crew.compliance).get(f"{LIST}/{export.pk}").json()
    assert len(data["approvals"]["signatures"]) == 3
    assert data["approvals"]["history"][-1]["action"] == "finalized"
    foreign_operator = member_of(other_team, "operator", username="foreign-ops")
    assert client_for(foreign_operator).get(f"{LIST}/{export.pk}").status_code == 404


def test_queue_is_blocked_by_the_guardrail_then_queues(client_for, crew, export, packaging_calls):
    client = client_for(crew.operator)
    response = client.post(f"{LIST}/{export.pk}/queue")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "packaging_blocked"
    assert error["details"]["guardrail"]["pending_stage"]["name"] == "Scientific review"
    sign_all(export, crew)
    NarrativeExport.objects.filter(pk=export.pk).update(status="failed")
    response = client.post(f"{LIST}/{export.pk}/queue")
    assert response.status_code == 202, response.json()
    assert response.json()["queued"] is True
    assert packaging_calls == [export.pk, export.pk]


def test_queue_needs_an_operator(client_for, crew, export):
    response = client_for(crew.auditor).post(f"{LIST}/{export.pk}/queue")
    assert response.status_code == 403
    assert client_for(crew.operator).post(f"{LIST}/999999/queue").status_code == 404
