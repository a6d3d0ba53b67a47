"""GET /api/experiments/{execution_id}/preview and the scientist's preview page."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exports.models import ExecutionEvent
from exports.services.evidence import notebook_entry_create
from exports.services.executions import EventInput, events_append, execution_create
from governance.models import AuditEvent, GovernanceTemplateAuditLog
from tests.approvals.factories import export_with_ladder, published_snapshot
from tests.factories import member_of
from tests.tampering import tamper_snapshot

pytestmark = pytest.mark.django_db


def url(execution_id) -> str:
    return f"/api/experiments/{execution_id}/preview"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def study(ladder_execution, crew):
    events_append(
        execution=ladder_execution,
        actor=crew.author,
        events=[EventInput("sample.loaded", {"well": f"A{i}"}) for i in range(1, 4)],
    )
    entry = notebook_entry_create(
        execution=ladder_execution, actor=crew.author, title="Plate layout", body="Wells **A1–A3** loaded."
    )
    return ladder_execution, entry


def test_preview_projects_the_ladder_renders_the_narrative_and_records_itself(
    client_for, crew, snapshot, export, study
):
    execution, entry = study
    response = client_for(crew.author).get(url(execution.pk))

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["execution_id"] == execution.pk
    assert body["template_snapshot_id"] == snapshot.pk
    assert body["warnings"] == []
    stages = body["stages"]
    assert [s["name"] for s in stages] == ["Scientific review", "QA approval", "Compliance sign-off"]
    # the existing export's ladder keeps one stage open per role: each stage waits one hour for it
    assert [s["open_load"] for s in stages] == [1, 1, 1]
    previewed_at = parse(body["previewed_at"])
    assert parse(stages[0]["projected_start"]) == previewed_at + timedelta(hours=1)
    assert parse(stages[0]["projected_due"]) == previewed_at + timedelta(hours=25)
    assert parse(stages[1]["activated_at"]) == parse(stages[0]["projected_due"])
    assert parse(stages[2]["projected_due"]) - parse(stages[2]["projected_start"]) == timedelta(hours=72)
    assert "Plate layout" in body["narrative_markdown"]
    assert "sample.loaded" in body["narrative_markdown"]
    assert [(item["kind"], item["id"]) for item in body["evidence"]] == [("notebook_entry", entry.pk)]

    log = GovernanceTemplateAuditLog.objects.get(action="previewed", execution_id=execution.pk)
    assert log.snapshot_id == snapshot.pk and log.actor == crew.author
    event = ExecutionEvent.objects.get(execution=execution, event_type="governance.preview.summary")
    assert event.payload["template_snapshot_id"] == snapshot.pk
    assert event.payload["template_audit_log_id"] == log.pk
    assert [(s["position"], s["required_role"], s["sla_hours"]) for s in event.payload["stages"]] == [
        (1, "reviewer", 24.0),
        (2, "qa_approver", 48.0),
        (3, "compliance", 72.0),
    ]
    assert event.payload["stages"][0]["projected_due"] == stages[0]["projected_due"]
    audit = AuditEvent.objects.get(action="governance.preview.summary")
    assert audit.payload["sequence"] == event.sequence and audit.team_id == execution.team_id
    assert AuditEvent.objects.filter(action="workflow_template.previewed").count() == 1


def test_evidence_selector_chooses_what_is_previewed_and_reports_missing_items(client_for, crew, snapshot, study):
    execution, entry = study
    client = client_for(crew.author)

    only_missing = client.get(url(execution.pk), {"evidence": "file:999999"}).json()
    assert [w["code"] for w in only_missing["warnings"]] == ["evidence_missing", "no_evidence_selected"]
    assert only_missing["warnings"][0]["details"]["evidence"] == [{"kind": "file", "id": 999999}]
    assert "Plate layout" not in only_missing["narrative_markdown"]

    chosen = client.get(url(execution.pk), {"evidence": f"notebook_entry:{entry.pk}"}).json()
    assert chosen["warnings"] == [] and "Plate layout" in chosen["narrative_markdown"]

    none = client.get(url(execution.pk), {"evidence": ""}).json()
    assert [w["code"] for w in none["warnings"]] == ["no_evidence_selected"]


def test_no_published_template_is_a_warning_not_an_error(client_for, crew, ladder_execution):
    response = client_for(crew.author).get(url(ladder_execution.pk))

    assert response.status_code == 200
    body = response.json()
    assert body["template_snapshot_id"] is None and body["stages"] == []
    assert [w["code"] for w in body["warnings"]] == ["no_published_template", "no_evidence_selected"]
    assert body["narrative_markdown"]
    log = GovernanceTemplateAuditLog.objects.get(action="previewed", execution_id=ladder_execution.pk)
    assert log.snapshot_id is None and log.details["warnings"][0] == "no_published_template"


def test_drift_is_a_warning_and_skipped_levels_are_explained(client_for, crew, team, ladder_execution):
    from governance.services.templates import template_assign

    default = published_snapshot()
    team_template = published_snapshot(key="team-release").template
    template_assign(template=team_template, actor=None, team=team)
    tamper_snapshot(team_template.snapshots.get().pk, team_template.snapshots.get().canonical_json + " ")

    body = client_for(crew.author).get(url(ladder_execution.pk)).json()

    assert body["template_snapshot_id"] == team_template.snapshots.get().pk != default.pk
    assert body["template"]["source"] == "team"
    codes = [w["code"] for w in body["warnings"]]
    assert "template_snapshot_drift" in codes
    assert len(body["stages"]) == 3  # the content still parses: the projection is shown, flagged by the warning


def test_permission_not_found_and_bad_input(client_for, api_client, crew, other_team, snapshot, ladder_execution):
    stranger = member_of(other_team, "scientist", username="stranger")
    assert client_for(stranger).get(url(ladder_execution.pk)).status_code == 404
    assert client_for(crew.author).get(url(999999)).json()["error"]["code"] == "execution_not_found"

    bad = client_for(crew.author).get(url(ladder_execution.pk), {"evidence": "spreadsheet:1,file:x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_evidence_selector"
    duplicate = client_for(crew.author).get(url(ladder_execution.pk), {"evidence": "file:1,file:1"})
    assert duplicate.status_code == 400
    assert not ExecutionEvent.objects.filter(event_type="governance.preview.summary").exists()

    api_client.force_authenticate(None)
    assert api_client.get(url(ladder_execution.pk)).status_code == 401


def _preview_queries(client, execution) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url(execution.pk)).status_code == 200
    return len(captured)


def test_query_count_does_not_grow_with_events_evidence_or_open_stages(client_for, team, crew, snapshot, study):
    execution, _ = study
    client = client_for(crew.author)
    small = _preview_queries(client, execution)

    events_append(execution=execution, actor=crew.author, events=[EventInput("reading", {"n": i}) for i in range(200)])
    for index in range(5):
        notebook_entry_create(execution=execution, actor=crew.author, title=f"Note {index}", body="text")
        other = execution_create(team=team, title=f"Other {index}", owner=crew.author)
        export_with_ladder(execution=other, author=crew.author, snapshot=snapshot)

    assert _preview_queries(client, execution) == small
    assert small <= 30


def test_preview_page_shows_the_ladder_warnings_and_sanitized_narrative(client, crew, other_team, snapshot, study):
    execution, _ = study
    notebook_entry_create(
        execution=execution, actor=crew.author, title="Risky", body="<script>alert(1)</script> **bold**"
    )
    client.force_login(crew.author)

    home = client.get("/")
    assert f"/exports/executions/{execution.pk}/preview" in home.content.decode()

    page = client.get(f"/exports/executions/{execution.pk}/preview")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('data-testid="preview-stage"') == 3
    assert "QA approval" in html and "standard-release v1" in html
    assert "<h1>" in html.split('data-testid="preview-narrative"')[1]  # Markdown rendered to HTML
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)</script>" not in html
    assert ExecutionEvent.objects.filter(execution=execution, event_type="governance.preview.summary").count() == 1

    missing = client.get(f"/exports/executions/{execution.pk}/preview", {"evidence": "file:424242"})
    assert "evidence_missing" in missing.content.decode()
    assert client.get(f"/exports/executions/{execution.pk}/preview", {"evidence": "nope"}).status_code == 400

    client.force_login(member_of(other_team, "scientist", username="outsider"))
    assert client.get(f"/exports/executions/{execution.pk}/preview").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_preview_is_one_transaction_of_its_own(client_for, crew, snapshot, ladder_execution):
    """Outside any test transaction (autocommit, as a live server runs it) the preview locks and writes in its own
    transaction: its timeline event and audit row are both there."""
    response = client_for(crew.author).get(url(ladder_execution.pk))

    assert response.status_code == 200, response.json()
    assert (
        ExecutionEvent.objects.filter(execution=ladder_execution, event_type="governance.preview.summary").count() == 1
    )
