"""Say what you do with what you are sent: a field an endpoint does not take is 400 unknown_fields, never dropped
(docs/api-schema.md)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from config.api import UnknownFields, unknown_fields_check
from exports.api.serializers import EventInput, ExportCreateInput
from exports.models import Evidence, Execution, ExecutionEvent, NarrativeExport

pytestmark = pytest.mark.django_db


def assert_unknown(response, fields: list[str]) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "unknown_fields"
    assert error["details"]["fields"] == fields
    assert all(field in error["message"] for field in fields)


def test_an_unknown_top_level_field_is_refused_and_nothing_is_created(client_for, scientist, team):
    response = client_for(scientist).post(
        "/api/experiment-console/sessions", {"title": "Run", "team": team.slug, "titel": "typo"}, format="json"
    )
    assert_unknown(response, ["titel"])
    assert not Execution.objects.filter(title="Run").exists()


def test_unknown_fields_inside_a_list_of_events_name_their_index(client_for, scientist, execution):
    response = client_for(scientist).post(
        f"/api/experiment-console/sessions/{execution.pk}/events",
        [{"event_type": "ok"}, {"event_type": "step", "actor": "someone-else", "sequence": 1}],
        format="json",
    )
    assert_unknown(response, ["[1].actor", "[1].sequence"])
    assert not ExecutionEvent.objects.filter(execution=execution, event_type__in=["ok", "step"]).exists()


def test_a_nested_unknown_field_is_named_by_its_path(client_for, scientist, execution):
    response = client_for(scientist).post(
        f"/api/experiment-console/sessions/{execution.pk}/exports/narrative",
        {"evidence": [{"kind": "notebook_entry", "id": 1, "sha256": "x"}], "status": "approved"},
        format="json",
    )
    assert_unknown(response, ["evidence[0].sha256", "status"])
    assert not NarrativeExport.objects.filter(execution=execution).exists()


def test_free_form_objects_keep_any_key(client_for, scientist, execution):
    response = client_for(scientist).post(
        f"/api/experiment-console/sessions/{execution.pk}/events",
        {"event_type": "step", "payload": {"anything": {"goes": 1}}},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_the_token_endpoint_refuses_unknown_fields(api_client, scientist):
    response = api_client.post(
        "/api/auth/token", {"username": scientist.username, "password": "x", "remember": True}, format="json"
    )
    assert_unknown(response, ["remember"])


def test_multipart_uploads_refuse_unknown_form_fields(client_for, scientist, execution):
    upload = SimpleUploadedFile("a.txt", b"hello", content_type="text/plain")
    response = client_for(scientist).post(
        f"/api/experiment-console/sessions/{execution.pk}/files",
        {"file": upload, "title": "A", "owner": "someone"},
        format="multipart",
    )
    assert_unknown(response, ["owner"])
    assert not Evidence.objects.filter(execution=execution).exists()


def test_approval_and_governance_inputs_refuse_unknown_fields(client_for, scientist):
    client = client_for(scientist)
    assert_unknown(client.post("/api/governance/baselines", {"bogus": 1}, format="json"), ["bogus"])
    assert_unknown(
        client.post("/api/governance/templates", {"template_key": "k", "stage_blueprints": []}, format="json"),
        ["stage_blueprints"],
    )


def test_query_parameters_stay_lenient(client_for, scientist):
    response = client_for(scientist).get("/api/governance/analytics", {"window": "7", "_": "123"})
    assert response.status_code == 200, response.content


def test_the_check_reports_every_depth_in_order():
    with pytest.raises(UnknownFields) as caught:
        unknown_fields_check(EventInput, [{"event_type": "a"}, {"x": 1, "event_type": "b", "y": 2}], many=True)
    assert caught.value.details == {"fields": ["[1].x", "[1].y"]}
    with pytest.raises(UnknownFields) as nested:
        unknown_fields_check(ExportCreateInput, {"evidence": [{"kind": "file", "id": 1}, {"kind": "file", "z": 0}]})
    assert nested.value.details == {"fields": ["evidence[1].z"]}
    unknown_fields_check(ExportCreateInput, {"evidence": "not a list"})  # a type error is validation's to report


@pytest.mark.parametrize(
    "body, field",
    [
        ({"execution": "1", "title": "t", "body": "b"}, "execution"),
        ({"execution": 1.0, "title": "t", "body": "b"}, "execution"),
        ({"execution": True, "title": "t", "body": "b"}, "execution"),
        ({"execution": 1, "title": 5, "body": "b"}, "title"),
    ],
)
def test_values_of_another_json_type_are_refused_not_coerced(client_for, scientist, execution, body, field):
    body = {**body, "execution": execution.pk} if field != "execution" else body
    response = client_for(scientist).post("/api/notebook/entries", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]["fields"]
    assert not Evidence.objects.filter(execution=execution).exists()


def test_type_errors_are_reported_beside_missing_fields(api_client):
    response = api_client.post("/api/auth/token", {"username": 7}, format="json")
    fields = response.json()["error"]["details"]["fields"]
    assert response.status_code == 400 and set(fields) == {"username", "password"}
    assert fields["username"] == ["Expected a string."]
