from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalSignature, ApprovalStage
from tests.approvals.factories import PASSWORD
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def url(export, tail: str = "approve") -> str:
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/{tail}"


def active_id(export) -> int:
    return ApprovalStage.objects.get(ladder__export=export, status="in_progress").pk


def body(export, **overrides):
    return {
        "decision": "approve",
        "password": PASSWORD,
        "meaning": "Reviewed",
        "comment": "",
        "expected_stage_id": active_id(export),
    } | overrides


def test_approve_signs_the_active_stage(client_for, crew, export):
    response = client_for(crew.reviewer).post(url(export), body(export), format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["signature"]["signer"] == "rev"
    assert data["signature"]["narrative_digest"] == export.narrative_digest
    assert data["signature"]["meaning"] == "Reviewed"
    assert data["signature"]["signed_at"].endswith("Z")
    assert [s["status"] for s in data["ladder"]["stages"]] == ["approved", "in_progress", "pending"]
    assert data["export"]["status"] == "awaiting_approval"
    assert data["dispatched"] is False


def test_the_whole_ladder_through_the_api_queues_packaging(client_for, crew, export, packaging_calls):
    for user in (crew.reviewer, crew.qa, crew.compliance):
        response = client_for(user).post(url(export), body(export), format="json")
        assert response.status_code == 200, response.json()
    data = response.json()
    assert data["dispatched"] is True and data["ladder"]["status"] == "approved"
    assert packaging_calls == [export.pk]


@pytest.mark.parametrize(
    "payload",
    [
        {"decision": "maybe"},
        {"expected_stage_id": "abc"},
        {"expected_stage_id": None},
        {"password": None},
        {"meaning": "x" * 201},
    ],
)
def test_bad_input_is_400(client_for, crew, export, payload):
    response = client_for(crew.reviewer).post(url(export), body(export, **payload), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not ApprovalSignature.objects.exists()


def test_malformed_json_is_400(client_for, crew, export):
    response = client_for(crew.reviewer).post(url(export), "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_wrong_password_is_403_signature_invalid_then_locked_out(client_for, crew, export):
    client = client_for(crew.reviewer)
    for _ in range(5):
        response = client.post(url(export), body(export, password="nope"), format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "signature_invalid"
    response = client.post(url(export), body(export), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "signer_locked_out"
    assert "locked_until" in response.json()["error"]["details"]
    assert not ApprovalSignature.objects.exists()


def test_author_signing_their_own_export_is_403(client_for, crew, export, team):
    member_of(team, "reviewer", username="author")
    response = client_for(crew.author).post(url(export), body(export), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "separation_of_duties"


def test_without_the_role_it_is_403(client_for, crew, export):
    response = client_for(crew.auditor).post(url(export), body(export), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted_to_sign"


def test_stale_stage_is_409(client_for, crew, export):
    stale = active_id(export)
    client_for(crew.reviewer).post(url(export), body(export), format="json")
    response = client_for(crew.qa).post(url(export), body(export, expected_stage_id=stale), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_stage"


def test_foreign_team_and_wrong_execution_are_404(client_for, crew, export, other_team):
    outsider = member_of(other_team, "reviewer", username="outsider")
    response = client_for(outsider).post(url(export), body(export), format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "export_not_found"
    wrong = f"/api/experiment-console/sessions/{export.execution_id + 100}/exports/narrative/{export.pk}/approve"
    assert client_for(crew.reviewer).post(wrong, body(export), format="json").status_code == 404


def test_anonymous_is_401(api_client, export):
    assert api_client.post(url(export), {}, format="json").status_code == 401


def test_delegate_endpoint(client_for, crew, export):
    stage = active_id(export)
    due = (timezone.now() + timedelta(hours=3)).isoformat()
    client = client_for(crew.operator)
    response = client.post(
        url(export, f"stages/{stage}/delegate"), {"assignee": "rev2", "reason": "Leave", "due_at": due}, format="json"
    )
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["ladder"]["stages"][0]["assignee"] == "rev2"
    assert data["ladder"]["history"][-1]["action"] == "delegated"
    assert data["ladder"]["history"][-1]["to_assignee"] == "rev2"


def test_delegate_bad_input_permission_and_unknown_stage(client_for, crew, export):
    stage = active_id(export)
    ops = client_for(crew.operator)
    response = ops.post(url(export, f"stages/{stage}/delegate"), {"assignee": "ghost", "reason": "x"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "invalid_assignee"
    response = ops.post(url(export, f"stages/{stage}/delegate"), {"reason": "x"}, format="json")
    assert response.status_code == 400 and "assignee" in response.json()["error"]["details"]["fields"]
    response = ops.post(url(export, "stages/999999/delegate"), {"assignee": "rev2", "reason": "x"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "stage_not_found"
    response = client_for(crew.auditor).post(
        url(export, f"stages/{stage}/delegate"), {"assignee": "rev2", "reason": "x"}, format="json"
    )
    assert response.status_code == 403


def test_reset_endpoint(client_for, crew, export):
    stage = active_id(export)
    client_for(crew.reviewer).post(url(export), body(export), format="json")
    response = client_for(crew.admin).post(url(export, f"stages/{stage}/reset"), {"reason": "Redo"}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["ladder"]["iteration"] == 2
    assert data["ladder"]["signatures"][0]["superseded"] is True
    assert client_for(crew.admin).post(url(export, f"stages/{stage}/reset"), {}, format="json").status_code == 400
    response = client_for(crew.reviewer).post(url(export, f"stages/{stage}/reset"), {"reason": "x"}, format="json")
    assert response.status_code == 403
    assert client_for(crew.admin).post(url(export, "stages/999999/reset"), {"reason": "x"}).status_code == 404


def test_approvals_record_endpoint(client_for, crew, export):
    client_for(crew.reviewer).post(url(export), body(export), format="json")
    response = client_for(crew.auditor).get(url(export, "approvals"))
    assert response.status_code == 200
    data = response.json()
    assert len(data["ladder"]["signatures"]) == 1 and data["ladder"]["history"]


def test_export_creation_through_the_exports_api_builds_the_ladder(client_for, crew, ladder_execution, snapshot):
    from exports.services.evidence import notebook_entry_create

    note = notebook_entry_create(execution=ladder_execution, actor=crew.author, title="Notes", body="Fine.")
    base = f"/api/experiment-console/sessions/{ladder_execution.pk}/exports/narrative"
    response = client_for(crew.author).post(
        base, {"evidence": [{"kind": "notebook_entry", "id": note.pk}]}, format="json"
    )
    assert response.status_code == 201, response.json()
    ladder = response.json()["ladder"]
    assert ladder["status"] == "in_progress"
    assert [(s["index"], s["required_role"], s["status"]) for s in ladder["stages"]] == [
        (0, "reviewer", "in_progress"),
        (1, "qa_approver", "pending"),
        (2, "compliance", "pending"),
    ]
    assert ladder["stages"][0]["due_at"].endswith("Z")
    listing = client_for(crew.reviewer).get(base).json()
    assert listing["results"][0]["ladder"]["stages"][0]["id"] == ladder["stages"][0]["id"]


@pytest.mark.parametrize("path", ["approve-approve-approve", "approve-reject"])
def test_each_decision_answers_with_the_ladder_the_record_endpoint_shows(client_for, crew, export, path):
    """The approve endpoint builds its answer from the rows it holds; it must match a fresh read exactly."""
    signers = [crew.reviewer, crew.qa, crew.compliance]
    for signer, decision in zip(signers, path.split("-"), strict=False):
        overrides = {"decision": decision, "comment": "Not this one" if decision == "reject" else ""}
        answer = client_for(signer).post(url(export), body(export, **overrides), format="json")
        assert answer.status_code == 200, answer.json()
        record = client_for(crew.auditor).get(url(export, "approvals")).json()
        assert answer.json()["ladder"] == record["ladder"]
        assert answer.json()["export"] == record["export"]
        assert answer.json()["signature"] == record["ladder"]["signatures"][-1]
