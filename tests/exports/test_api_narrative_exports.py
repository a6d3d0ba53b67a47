import pytest

from exports.models import NarrativeExport
from exports.services.executions import execution_create

pytestmark = pytest.mark.django_db


def url(execution_id, export_id=None):
    base = f"/api/experiment-console/sessions/{execution_id}/exports/narrative"
    return base if export_id is None else f"{base}/{export_id}"


def ladder_hook(exports):
    return {
        export.pk: {"ladder": {"status": "in_progress", "stages": []}, "approvals_seen": True} for export in exports
    }


def test_create_returns_the_documented_shape(client_for, scientist, execution, selection, published_template, settings):
    settings.DOSSIER_EXPORT_CREATED_HOOKS = []  # exports alone: the approvals hooks are tested in tests/approvals
    settings.DOSSIER_EXPORT_REPRESENTATION_HOOKS = []
    response = client_for(scientist).post(url(execution.pk), {"evidence": selection, "notes": "first"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    for key in [
        "id",
        "execution_id",
        "version",
        "status",
        "narrative_digest",
        "template_snapshot_id",
        "ladder",
        "packaging_queue_state",
        "artifact",
        "created_at",
    ]:
        assert key in body
    assert body["execution_id"] == execution.pk and body["version"] == 1
    assert body["status"] == "awaiting_approval"
    assert body["template_snapshot_id"] == published_template.pk
    assert body["ladder"] is None and body["artifact"] is None
    assert len(body["narrative_digest"]) == 64
    assert {item["kind"] for item in body["attachments"]} == {"file", "notebook_entry", "qc_metric", "timeline_event"}
    assert body["author"] == "sci" and body["redaction_counts"]["EMAIL"] >= 1


def test_representation_hooks_supply_the_ladder(client_for, scientist, execution, published_template, settings):
    settings.DOSSIER_EXPORT_REPRESENTATION_HOOKS = ["tests.exports.test_api_narrative_exports.ladder_hook"]
    body = client_for(scientist).post(url(execution.pk), {"evidence": []}, format="json").json()
    assert body["ladder"] == {"status": "in_progress", "stages": []}
    assert body["approvals_seen"] is True


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "evidence"),
        ({"evidence": "all"}, "evidence"),
        ({"evidence": [{"kind": "file"}]}, "evidence"),
        ({"evidence": [{"kind": "spreadsheet", "id": 1}]}, "evidence"),
        ({"evidence": [{"kind": "file", "id": "one"}]}, "evidence"),
        ({"evidence": [{"kind": "file", "id": -3}]}, "evidence"),
        ({"evidence": [], "classification": "Secret"}, "classification"),
        ({"evidence": [], "template_key": "no spaces allowed"}, "template_key"),
    ],
)
def test_malformed_selection_is_a_400_and_creates_nothing(
    client_for, scientist, execution, published_template, payload, field
):
    response = client_for(scientist).post(url(execution.pk), payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]["fields"]
    assert not NarrativeExport.objects.exists()


def test_malformed_json_is_a_400(client_for, scientist, execution, published_template):
    response = client_for(scientist).post(url(execution.pk), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    response = client_for(scientist).post(url(execution.pk), [1, 2], format="json")
    assert response.status_code == 400


def test_unknown_evidence_ids_are_a_404_with_the_ids(client_for, scientist, execution, published_template):
    response = client_for(scientist).post(
        url(execution.pk), {"evidence": [{"kind": "file", "id": 4242}]}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_evidence"
    assert response.json()["error"]["details"] == {"evidence": [{"kind": "file", "id": 4242}]}
    assert not NarrativeExport.objects.exists()


def test_evidence_of_another_team_is_unknown(client_for, scientist, execution, other_team, member, published_template):
    from exports.services.evidence import notebook_entry_create

    outsider = member("scientist", username="outsider", in_team=other_team)
    foreign_execution = execution_create(team=other_team, title="Theirs", owner=outsider)
    foreign = notebook_entry_create(execution=foreign_execution, actor=outsider, title="secret", body="x")
    response = client_for(scientist).post(
        url(execution.pk), {"evidence": [{"kind": "notebook_entry", "id": foreign.pk}]}, format="json"
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_evidence"
    assert not NarrativeExport.objects.exists()


def test_an_execution_of_another_team_is_a_404(client_for, other_team, member, published_template):
    outsider = member("scientist", username="outsider", in_team=other_team)
    foreign_execution = execution_create(team=other_team, title="Theirs", owner=outsider)
    insider = member("scientist", username="insider")
    response = client_for(insider).post(url(foreign_execution.pk), {"evidence": []}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "execution_not_found"
    assert client_for(insider).get(url(foreign_execution.pk)).status_code == 404


def test_members_without_a_writer_role_cannot_create(client_for, member, execution, published_template):
    reviewer = member("reviewer", username="rev")
    response = client_for(reviewer).post(url(execution.pk), {"evidence": []}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert client_for(reviewer).get(url(execution.pk)).status_code == 200  # reading needs only membership


def test_anonymous_requests_are_refused(api_client, execution):
    assert api_client.get(url(execution.pk)).status_code == 401
    assert api_client.post(url(execution.pk), {"evidence": []}, format="json").status_code == 401


def test_no_published_template_is_a_409(client_for, scientist, execution):
    response = client_for(scientist).post(url(execution.pk), {"evidence": []}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_published_template"


def test_list_has_every_version_with_a_fixed_query_count(
    client_for, scientist, execution, make_export, settings, django_assert_max_num_queries
):
    settings.DOSSIER_EXPORT_REPRESENTATION_HOOKS = ["tests.exports.test_api_narrative_exports.ladder_hook"]
    make_export()
    client = client_for(scientist)
    with django_assert_max_num_queries(12) as few:
        client.get(url(execution.pk))
    for _ in range(4):
        make_export()
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(url(execution.pk))
    body = response.json()
    assert body["count"] == 5
    assert [row["version"] for row in body["results"]] == [5, 4, 3, 2, 1]
    assert all(row["ladder"] == {"status": "in_progress", "stages": []} for row in body["results"])


def test_detail_has_history_lifecycle_and_runs(client_for, scientist, execution, make_export, settings):
    settings.DOSSIER_EXPORT_CREATED_HOOKS = []  # exports alone: the approvals hooks are tested in tests/approvals
    settings.DOSSIER_EXPORT_REPRESENTATION_HOOKS = []
    first = make_export()
    second = make_export()
    body = client_for(scientist).get(url(execution.pk, second.pk)).json()
    assert body["id"] == second.pk and body["version"] == 2
    assert [v["id"] for v in body["versions"]] == [first.pk, second.pk]
    assert [e["event_type"] for e in body["lifecycle"]] == ["narrative_export.created"]
    assert body["packaging_runs"] == [] and body["ladder"] is None


def test_detail_of_an_unknown_or_mismatched_export_is_a_404(client_for, scientist, execution, make_export, team):
    export = make_export()
    other = execution_create(team=team, title="Another", owner=scientist)
    assert client_for(scientist).get(url(other.pk, export.pk)).status_code == 404
    assert client_for(scientist).get(url(execution.pk, 999_999)).json()["error"]["code"] == "export_not_found"
