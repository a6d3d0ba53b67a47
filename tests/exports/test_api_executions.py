import pytest

from exports.models import Evidence, Execution, ExecutionEvent
from governance.models import AuditEvent

pytestmark = pytest.mark.django_db
SESSIONS = "/api/experiment-console/sessions"


def test_scientist_creates_and_reads_an_execution(client_for, scientist, team):
    client = client_for(scientist)
    response = client.post(SESSIONS, {"title": "Assay 1", "team": "alpha", "protocol_template": "assay"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["team"] == "alpha" and body["owner"] == "sci" and body["protocol_template"] == "assay"
    detail = client.get(f"{SESSIONS}/{body['id']}")
    assert detail.status_code == 200 and detail.json()["title"] == "Assay 1"
    assert AuditEvent.objects.filter(action="execution.created", object_id=str(body["id"])).exists()


def test_creating_in_a_team_you_are_not_in_is_404(client_for, scientist, other_team):
    response = client_for(scientist).post(SESSIONS, {"title": "x", "team": "beta"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "team_not_found"
    assert not Execution.objects.exists()


def test_wrong_types_are_400_with_field_details(client_for, scientist, team):
    response = client_for(scientist).post(SESSIONS, {"title": ["not", "a", "string"], "team": 7}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "title" in error["details"]["fields"]
    assert not Execution.objects.exists()


def test_auditor_may_read_but_not_start_executions(client_for, member, execution):
    auditor = member("auditor", username="aud")
    client = client_for(auditor)
    assert client.get(f"{SESSIONS}/{execution.pk}").status_code == 200
    response = client.post(SESSIONS, {"title": "x", "team": "alpha"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_member_of_team_a_gets_404_for_team_b_execution_and_evidence(client_for, member, other_team, execution):
    outsider = member("scientist", username="outsider", in_team=other_team)
    client = client_for(outsider)
    for url in (
        f"{SESSIONS}/{execution.pk}",
        f"{SESSIONS}/{execution.pk}/events",
        f"/api/data/evidence?execution={execution.pk}",
        f"/api/notebook/entries/evidence?execution={execution.pk}",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "execution_not_found"
    assert client.get(SESSIONS).json()["count"] == 0
    response = client.post(f"{SESSIONS}/{execution.pk}/events", {"event_type": "x.y"}, format="json")
    assert response.status_code == 404


def test_unknown_execution_is_404(client_for, scientist):
    response = client_for(scientist).get(f"{SESSIONS}/999999")
    assert response.status_code == 404


def test_events_get_server_sequences_in_order(client_for, scientist, execution):
    client = client_for(scientist)
    url = f"{SESSIONS}/{execution.pk}/events"
    one = client.post(url, {"event_type": "step.started", "payload": {"step": "thaw"}}, format="json")
    assert one.status_code == 201 and one.json()[0]["sequence"] == 1
    claimed = client.post(url, [{"event_type": "step.completed", "sequence": 999}], format="json")
    assert claimed.status_code == 400 and claimed.json()["error"]["details"]["fields"] == ["[0].sequence"]
    many = client.post(url, [{"event_type": "step.completed", "payload": {"i": i}} for i in range(3)], format="json")
    assert [row["sequence"] for row in many.json()] == [2, 3, 4]
    listing = client.get(url, {"after_sequence": 2}).json()
    assert [row["sequence"] for row in listing["results"]] == [3, 4]


def test_reserved_and_malformed_events_are_refused_and_nothing_is_stored(client_for, scientist, execution):
    client = client_for(scientist)
    url = f"{SESSIONS}/{execution.pk}/events"
    reserved = client.post(url, {"event_type": "narrative_export.created"}, format="json")
    assert reserved.status_code == 400 and reserved.json()["error"]["code"] == "reserved_event_type"
    bad_payload = client.post(url, [{"event_type": "ok.one"}, {"event_type": "ok.two", "payload": [1]}], format="json")
    assert bad_payload.status_code == 400
    not_objects = client.post(url, ["a", "b"], format="json")
    assert not_objects.status_code == 400
    garbage = client.generic("POST", url, "[{", content_type="application/json")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "malformed_request"
    assert not ExecutionEvent.objects.exists()
    execution.refresh_from_db()
    assert execution.last_sequence == 0


def test_notebook_and_structured_evidence_are_listed_for_pickers(client_for, scientist, execution):
    client = client_for(scientist)
    note = client.post(
        "/api/notebook/entries", {"execution": execution.pk, "title": "Notes", "body": "# Day 1\nAll good"}
    )
    assert note.status_code == 201, note.json()
    qc = client.post(
        "/api/data/evidence",
        {"execution": execution.pk, "kind": "qc_metric", "title": "QC", "data": {"z": 0.7}},
        format="json",
    )
    assert qc.status_code == 201, qc.json()
    listing = client.get("/api/data/evidence", {"execution": execution.pk}).json()
    assert listing["count"] == 2
    assert {"kind", "id", "title", "size", "sha256", "created_at"} <= set(listing["results"][0])
    only_qc = client.get("/api/data/evidence", {"execution": execution.pk, "kind": "qc_metric"}).json()
    assert [row["id"] for row in only_qc["results"]] == [qc.json()["id"]]
    notes = client.get("/api/notebook/entries/evidence", {"execution": execution.pk}).json()
    assert [row["id"] for row in notes["results"]] == [note.json()["id"]]


def test_timeline_events_are_offered_as_evidence(client_for, scientist, execution):
    client = client_for(scientist)
    client.post(f"{SESSIONS}/{execution.pk}/events", {"event_type": "step.started"}, format="json")
    listing = client.get("/api/data/evidence", {"execution": execution.pk, "kind": "timeline_event"}).json()
    assert listing["count"] == 1
    assert listing["results"][0]["title"] == "#1 step.started"


def test_evidence_listing_needs_an_execution(client_for, scientist):
    response = client_for(scientist).get("/api/data/evidence", {"execution": "abc"})
    assert response.status_code == 400


def test_structured_evidence_validation(client_for, scientist, execution):
    client = client_for(scientist)
    response = client.post(
        "/api/data/evidence", {"execution": execution.pk, "kind": "file", "title": "x", "data": {}}, format="json"
    )
    assert response.status_code == 400
    response = client.post(
        "/api/data/evidence", {"execution": execution.pk, "kind": "qc_metric", "title": "x"}, format="json"
    )
    assert response.status_code == 400
    assert not Evidence.objects.exists()


def test_operator_override_and_reviewer_coaching_note_join_the_timeline(client_for, member, execution):
    operator = member("operator", username="op")
    reviewer = member("reviewer", username="rev")
    override = client_for(operator).post(
        f"{SESSIONS}/{execution.pk}/overrides",
        {"step": "incubate", "field": "temp_c", "value": 36.5, "reason": "Probe drift"},
        format="json",
    )
    assert override.status_code == 201, override.json()
    assert override.json()["event_type"] == "execution.override"
    note = client_for(reviewer).post(f"{SESSIONS}/{execution.pk}/coaching-notes", {"body": "Log the probe id"})
    assert note.status_code == 201
    assert list(execution.events.values_list("event_type", flat=True)) == [
        "execution.override",
        "execution.coaching_note",
    ]
    assert AuditEvent.objects.filter(action="execution.override_recorded").exists()
    refused = client_for(reviewer).post(
        f"{SESSIONS}/{execution.pk}/overrides", {"step": "a", "field": "b", "value": 1, "reason": "c"}, format="json"
    )
    assert refused.status_code == 403


def test_evidence_above_the_viewers_clearance_is_listed_withheld(client_for, scientist, execution):
    """A picker shows the label of evidence above the viewer's clearance, never its title or digest."""
    from governance.models import Clearance

    client = client_for(scientist)
    rows = {}
    for label in ("Internal", "Restricted"):
        created = client.post(
            "/api/data/evidence",
            {"execution": execution.pk, "kind": "qc_metric", "title": f"{label} titration",
             "data": {"z": 0.7}, "classification": label},
            format="json",
        )  # fmt: skip
        assert created.status_code == 201, created.json()
        rows[label] = created.json()["id"]
    listed = {row["id"]: row for row in client.get("/api/data/evidence", {"execution": execution.pk}).json()["results"]}
    shown, hidden = listed[rows["Internal"]], listed[rows["Restricted"]]
    assert (shown["title"], shown["withheld"], shown["classification"]) == ("Internal titration", False, "Internal")
    assert shown["sha256"]
    assert hidden == {**hidden, "title": "[WITHHELD: Restricted evidence]", "withheld": True, "sha256": None}
    assert hidden["classification"] == "Restricted" and hidden["size"] is not None

    Clearance.objects.create(user=scientist, team=execution.team, level="Restricted")
    cleared = client.get("/api/data/evidence", {"execution": execution.pk, "kind": "qc_metric"}).json()["results"]
    assert {row["title"] for row in cleared} == {"Internal titration", "Restricted titration"}
    assert not any(row["withheld"] for row in cleared)
