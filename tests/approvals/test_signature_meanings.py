"""A signature says what happened: each stage has an approval and a rejection meaning, a decision without a
meaning takes the one of its decision, and a rejection can never be stored with the approval meaning."""

import pytest
from django.test import Client

from approvals.models import ApprovalSignature, ApprovalStage, SignatureAttempt
from approvals.services.ladders import ladder_instantiate
from exports.models import NarrativeExport
from exports.narratives import narrative_digest
from tests.approvals.factories import PASSWORD, STAGES, export_with_ladder, published_snapshot

pytestmark = pytest.mark.django_db


def url(export) -> str:
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/approve"


def active(export) -> ApprovalStage:
    return ApprovalStage.objects.get(ladder__export=export, status="in_progress")


def decision(export, **overrides):
    return {
        "decision": "reject",
        "password": PASSWORD,
        "comment": "Plate 3 is missing.",
        "expected_stage_id": active(export).pk,
    } | overrides


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Stages and templates -------------------------------------------------------------------------------------


def test_stages_default_to_the_rejected_meaning(export):
    stage = active(export)
    assert (stage.meaning, stage.reject_meaning) == ("Reviewed", "Rejected")


def test_a_template_stage_rejection_meaning_reaches_the_ladder(ladder_execution, crew):
    stages = [{**STAGES[0], "reject_meaning": "Returned for rework"}, *STAGES[1:]]
    snapshot = published_snapshot(key="rework-release", stages=stages)
    export = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    first, second = ApprovalStage.objects.filter(ladder__export=export).order_by("index")[:2]
    assert first.reject_meaning == "Returned for rework"
    assert second.reject_meaning == "Rejected"


def test_a_snapshot_from_before_rejection_meanings_rejects_with_the_default(ladder_execution, crew):
    """Snapshot format 2 stages have no reject_meaning: the ladder falls back to "Rejected"."""
    from governance.models import WorkflowTemplateSnapshot

    snapshot = published_snapshot(key="older")
    legacy = WorkflowTemplateSnapshot.objects.create(
        template=snapshot.template,
        template_key="older",
        version=1,
        canonical_json='{"stages": [{"meaning": "Reviewed", "name": "Review", "required_role": "reviewer", '
        '"sla_hours": 24}]}',
        content_sha256="0" * 64,
        format_version=2,
    )
    text = "# Older\n"
    export = NarrativeExport.objects.create(
        execution=ladder_execution,
        version=1,
        author=crew.author,
        template_snapshot=legacy,
        narrative_markdown=text,
        narrative_digest=narrative_digest(text, []),
    )
    ladder_instantiate(export=export, actor=crew.author)
    assert active(export).reject_meaning == "Rejected"


# --- The API --------------------------------------------------------------------------------------------------


def test_a_rejection_without_a_meaning_takes_the_stage_rejection_meaning(client_for, crew, export):
    response = client_for(crew.reviewer).post(url(export), decision(export), format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["signature"]["meaning"] == "Rejected"
    assert ApprovalSignature.objects.get().meaning == "Rejected"


def test_an_approval_without_a_meaning_takes_the_stage_approval_meaning(client_for, crew, export):
    response = client_for(crew.reviewer).post(url(export), decision(export, decision="approve"), format="json")
    assert response.status_code == 200, response.json()
    assert ApprovalSignature.objects.get().meaning == "Reviewed"


@pytest.mark.parametrize("meaning", ["Reviewed", "  reviewed  ", "REVIEWED"])
def test_a_rejection_with_the_approval_meaning_is_refused_and_nothing_is_stored(client_for, crew, export, meaning):
    response = client_for(crew.reviewer).post(url(export), decision(export, meaning=meaning), format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "meaning_mismatch"
    assert "Rejected" in error["message"]
    assert error["details"]["expected_meaning"] == "Rejected"
    assert not ApprovalSignature.objects.exists()
    assert not SignatureAttempt.objects.exists()  # refused before the password check: nothing counted
    assert active(export).status == "in_progress"


def test_an_approval_with_the_rejection_meaning_is_refused(client_for, crew, export):
    response = client_for(crew.reviewer).post(
        url(export), decision(export, decision="approve", meaning="Rejected"), format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "meaning_mismatch"
    assert not ApprovalSignature.objects.exists()


def test_a_rejection_with_its_own_meaning_is_stored_as_given(client_for, crew, export):
    response = client_for(crew.reviewer).post(
        url(export), decision(export, meaning="Returned: plate 3 missing"), format="json"
    )
    assert response.status_code == 200, response.json()
    assert ApprovalSignature.objects.get().meaning == "Returned: plate 3 missing"


def test_the_ladder_lists_both_meanings_of_each_stage(client_for, crew, export):
    approvals = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/approvals"
    response = client_for(crew.reviewer).get(approvals)
    assert response.status_code == 200, response.json()
    stages = response.json()["ladder"]["stages"]
    assert [(s["meaning"], s["reject_meaning"]) for s in stages] == [
        ("Reviewed", "Rejected"),
        ("Approved for release", "Rejected"),
        ("Compliant", "Rejected"),
    ]


# --- The page -------------------------------------------------------------------------------------------------


def test_the_sign_form_carries_both_meanings_for_the_script(crew, export):
    html = logged_in(crew.reviewer).get(f"/exports/{export.pk}/").content.decode()
    assert 'data-approve-meaning="Reviewed"' in html and 'data-reject-meaning="Rejected"' in html
    assert "js/sign-form.js" in html


def test_a_page_rejection_with_a_blank_meaning_is_signed_with_the_rejection_meaning(crew, export):
    form = decision(export, meaning="", username=crew.reviewer.username)
    response = logged_in(crew.reviewer).post(f"/exports/{export.pk}/sign", form, follow=True)
    html = response.content.decode()
    assert "Signed: stage rejected." in html
    assert ApprovalSignature.objects.get().meaning == "Rejected"
    assert "rejected — “Rejected”" in html and "rejectd" not in html


def test_a_page_rejection_with_the_approval_meaning_is_refused(crew, export):
    form = decision(export, meaning="Reviewed")
    response = logged_in(crew.reviewer).post(f"/exports/{export.pk}/sign", form, follow=True)
    html = response.content.decode()
    assert "is this stage&#x27;s approval meaning" in html or "is this stage's approval meaning" in html
    assert not ApprovalSignature.objects.exists()
