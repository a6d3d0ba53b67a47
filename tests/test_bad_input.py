"""Never a 500 on bad input: text the database cannot store is 400 invalid_text with its path, ids out of range are
404 in paths and never a server error in query strings (docs/text-policy.md, "Input")."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from exports.models import Evidence, ExecutionEvent

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"  # beyond signed 64-bit


def post_raw(client, path: str, raw_json: str):
    return client.post(path, data=raw_json, content_type="application/json")


def assert_invalid_text(response, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_text"
    assert error["details"]["field"] == field


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"event_type": "step", "payload": {"notes": ["a", "b", "c\\u0000"]}}', "payload.notes[2]"),
        ('{"event_type": "step", "payload": {"deep": {"x\\ud800": 1}}}', "payload.deep.x<U+D800>"),
        ('[{"event_type": "ok"}, {"event_type": "bad\\udc00"}]', "[1].event_type"),
        ('{"event_type": "step", "payload": {"k": "\\u0000"}}', "payload.k"),
    ],
)
def test_events_with_unstorable_text_are_400_with_the_path(client_for, scientist, execution, raw, field):
    response = post_raw(client_for(scientist), f"/api/experiment-console/sessions/{execution.pk}/events", raw)
    assert_invalid_text(response, field)
    assert not ExecutionEvent.objects.filter(execution=execution, event_type__in=["step", "ok"]).exists()


def test_a_valid_surrogate_pair_is_ordinary_text(client_for, scientist, execution):
    raw = '{"event_type": "step", "payload": {"emoji": "\\ud83e\\uddea"}}'
    response = post_raw(client_for(scientist), f"/api/experiment-console/sessions/{execution.pk}/events", raw)
    assert response.status_code == 201, response.content
    assert ExecutionEvent.objects.get(event_type="step").payload == {"emoji": "\U0001f9ea"}


def test_other_endpoints_refuse_unstorable_text_too(client_for, scientist, execution, team):
    client = client_for(scientist)
    sessions = post_raw(client, "/api/experiment-console/sessions", json.dumps({"title": "a\x00b", "team": team.slug}))
    assert_invalid_text(sessions, "title")
    notebook = post_raw(
        client, "/api/notebook/entries", '{"execution": ' + str(execution.pk) + ', "title": "t", "body": "x\\ud800"}'
    )
    assert_invalid_text(notebook, "body")
    exports = post_raw(
        client,
        f"/api/experiment-console/sessions/{execution.pk}/exports/narrative",
        '{"evidence": [], "notes": "n\\u0000"}',
    )
    assert_invalid_text(exports, "notes")
    token = post_raw(client, "/api/auth/token", '{"username": "x\\u0000", "password": "p"}')
    assert_invalid_text(token, "username")
    assert not Evidence.objects.exists()


def test_multipart_form_fields_with_nul_are_invalid_text(client_for, scientist, execution):
    upload = SimpleUploadedFile("plate.csv", b"a,b\n", content_type="text/csv")
    response = client_for(scientist).post(
        f"/api/experiment-console/sessions/{execution.pk}/files",
        {"file": upload, "title": "plate\x00"},
        format="multipart",
    )
    assert_invalid_text(response, "title")
    assert not Evidence.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        f"/api/experiment-console/sessions/{HUGE}",
        f"/api/experiment-console/sessions/{HUGE}/events",
        f"/api/experiment-console/sessions/1/exports/narrative/{HUGE}",
        f"/api/governance/templates/{HUGE}",
        f"/api/governance/exports/{HUGE}",
        f"/api/experiments/{HUGE}/preview",
    ],
)
def test_ids_beyond_64_bits_in_api_paths_are_404(client_for, scientist, path):
    response = client_for(scientist).get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_ids_beyond_64_bits_in_page_paths_are_404(client, scientist):
    client.force_login(scientist)
    assert client.get(f"/exports/{HUGE}/").status_code == 404
    assert client.post(f"/exports/{HUGE}/sign", {}).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        f"/api/data/evidence?execution={HUGE}",
        f"/api/notebook/entries/evidence?execution={HUGE}",
        f"/api/governance/exports?execution={HUGE}",
        f"/api/governance/baselines?execution={HUGE}",
        f"/api/experiment-console/sessions?owner={HUGE}",
        "/api/experiment-console/sessions/{execution}/events?after_sequence=" + HUGE,
        "/api/experiment-console/sessions/{execution}/events?actor=" + HUGE,
        "/api/data/evidence?execution=1e400",
    ],
)
def test_out_of_range_ids_in_query_filters_never_give_a_server_error(client_for, scientist, execution, path):
    # Any member may read; governance lists need other roles and may answer 403, never 500.
    response = client_for(scientist).get(path.format(execution=execution.pk))
    assert response.status_code in (200, 400, 403, 404), response.content
    if response.status_code == 200:
        body = response.json()
        assert body["count"] == 0 if "count" in body else body == []
