"""Each template stage has a rejection meaning beside its approval meaning (default "Rejected")."""

import pytest

from governance.models import WorkflowStageBlueprint
from governance.selectors.templates import snapshot_document
from governance.services.templates import template_publish
from tests.governance.conftest import THREE_STAGES

pytestmark = pytest.mark.django_db

URL = "/api/governance/templates"


@pytest.fixture
def curator_api(client_for, curator):
    return client_for(curator)


def body(stages, key="qa-release"):
    return {"team": "alpha", "template_key": key, "name": "QA release", "stages": stages}


@pytest.mark.parametrize("reject_meaning", [THREE_STAGES[0]["meaning"], f" {THREE_STAGES[0]['meaning'].upper()} "])
def test_a_rejection_meaning_equal_to_the_approval_meaning_is_refused(curator_api, reject_meaning):
    stages = [{**THREE_STAGES[0], "reject_meaning": reject_meaning}, *THREE_STAGES[1:]]
    response = curator_api.post(URL, body(stages), format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["fields"]["stages[0].reject_meaning"] == [
        "The rejection meaning must differ from the approval meaning."
    ]


@pytest.mark.parametrize("reject_meaning", ["", "   ", 7, "x" * 201])
def test_a_blank_or_malformed_rejection_meaning_is_refused(curator_api, reject_meaning):
    stages = [{**THREE_STAGES[0], "reject_meaning": reject_meaning}, *THREE_STAGES[1:]]
    response = curator_api.post(URL, body(stages), format="json")
    assert response.status_code == 400, response.json()
    assert "stages[0].reject_meaning" in response.json()["error"]["details"]["fields"]


def test_rejection_meanings_are_stored_defaulted_mirrored_and_frozen(curator_api):
    stages = [{**THREE_STAGES[0], "reject_meaning": "Returned for rework"}, *THREE_STAGES[1:]]
    response = curator_api.post(URL, body(stages), format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert [stage["reject_meaning"] for stage in created["stages"]] == ["Returned for rework", "Rejected", "Rejected"]
    rows = WorkflowStageBlueprint.objects.filter(template_id=created["id"]).order_by("position")
    assert [row.reject_meaning for row in rows] == ["Returned for rework", "Rejected", "Rejected"]

    from governance.models import WorkflowTemplate

    snapshot = template_publish(template=WorkflowTemplate.objects.get(pk=created["id"]))
    document = snapshot_document(snapshot)
    assert document["format_version"] == 4
    assert [stage["reject_meaning"] for stage in document["stages"]] == [
        "Returned for rework",
        "Rejected",
        "Rejected",
    ]
