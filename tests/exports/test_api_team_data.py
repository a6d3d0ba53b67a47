"""The team data export and erasure endpoints (docs/team-data.md): roles, another team's 404, bad input in the
error shape, the erasure's statuses. The worker that builds a requested bundle is exercised in
tests/integration/test_team_data_worker.py."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from exports.crypto import MAGIC
from exports.models import Evidence, LegalHold, NarrativeExport, TeamDataExport
from exports.services.team_data_exports import team_data_export_run
from governance.models import AuditEvent
from tests.approvals.factories import crew_for, published_snapshot
from tests.exports.team_records import team_record_create
from tests.exports.test_team_data_export import crew_for_other
from tests.stored import plaintext_bytes, stored_bytes

pytestmark = [pytest.mark.postgres]

REQUEST = "/api/governance/teams/{slug}/data-export"
ERASURE = "/api/governance/teams/{slug}/erasure"


@pytest.fixture
def crew(team):
    return crew_for(team)


@pytest.fixture
def other_crew(other_team):
    return crew_for_other(other_team)


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def record(team, crew):
    published_snapshot()
    return team_record_create(team, crew, executions=1)


def error_code(response) -> str:
    return response.json()["error"]["code"]


@pytest.mark.parametrize("role", ["compliance", "admin", "auditor"])
def test_readers_request_an_export_and_follow_it_to_the_download(
    client_for, crew, record, role, django_capture_on_commit_callbacks
):
    client = client_for(getattr(crew, role))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(REQUEST.format(slug="alpha"), format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["download_url"] is None and len(callbacks) == 1
    status_url = body["status_url"]
    assert client.get(status_url).json()["status"] == "queued"
    assert error_code(client.get(status_url + "/download")) == "team_data_export_not_ready"

    assert team_data_export_run(request_id=body["id"]) == "done"  # the worker's job
    done = client.get(status_url).json()
    assert done["status"] == "done" and done["counts"]["exports"] == 1 and done["download_url"]
    download = client.get(done["download_url"])
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert hashlib.sha256(content).hexdigest() == done["sha256"] == download["ETag"].strip('"')
    assert AuditEvent.objects.filter(action="governance.team_data.downloaded", team__slug="alpha").count() == 1
    # Stored encrypted, like every object (docs/encryption.md).
    stored = TeamDataExport.objects.get(pk=body["id"]).storage_path
    assert stored.startswith("alpha/team-data/")
    assert stored_bytes(stored).startswith(MAGIC) and plaintext_bytes(stored) == content


def test_other_roles_are_403_and_other_teams_404(client_for, crew, other_crew, record):
    assert client_for(crew.author).post(REQUEST.format(slug="alpha")).status_code == 403
    assert client_for(other_crew.compliance).post(REQUEST.format(slug="alpha")).status_code == 404
    mine = TeamDataExport.objects.create(team=record.packaged.execution.team, requested_by=crew.auditor)
    detail = f"{REQUEST.format(slug='alpha')}/{mine.pk}"
    assert client_for(other_crew.admin).get(detail).status_code == 404
    # Asked under another team's slug, even by a reader of both, it is not found.
    assert client_for(crew.auditor).get(f"{REQUEST.format(slug='beta')}/{mine.pk}").status_code == 404
    assert client_for(crew.auditor).get(f"{REQUEST.format(slug='alpha')}/999999").status_code == 404
    assert not TeamDataExport.objects.exclude(pk=mine.pk).exists()


def test_erasure_dry_run_then_run_then_repeat(client_for, crew, record):
    client = client_for(crew.admin)
    url = ERASURE.format(slug="alpha")
    plan = client.post(url, {"reason": "Offboarding", "dry_run": True}, format="json")
    assert plan.status_code == 200, plan.content
    assert plan.json()["dry_run"] is True and plan.json()["removed"]["exports"] == 1
    assert plan.json()["retained"]["signatures"] == 3
    assert NarrativeExport.objects.get(pk=record.packaged.pk).status == "packaged"

    done = client.post(url, {"reason": "Offboarding", "dry_run": False}, format="json")
    assert done.status_code == 200 and done.json()["erased"] is True
    assert NarrativeExport.objects.get(pk=record.packaged.pk).status == "erased"
    again = client.post(url, {"reason": "Offboarding", "dry_run": False}, format="json")
    assert again.status_code == 200 and again.json()["erased"] is False
    assert not any(again.json()["removed"].values())


def test_erasure_refusals_in_the_error_shape(client_for, crew, other_crew, record, team):
    url = ERASURE.format(slug="alpha")
    body = {"reason": "r", "dry_run": False}
    assert error_code(client_for(crew.compliance).post(url, body, format="json")) == "permission_denied"
    assert client_for(other_crew.admin).post(url, body, format="json").status_code == 404
    admin = client_for(crew.admin)
    assert error_code(admin.post(url, {"dry_run": False}, format="json")) == "validation_error"
    assert error_code(admin.post(url, {**body, "force": True}, format="json")) == "unknown_fields"
    assert admin.post(url, {"reason": "r", "dry_run": "maybe"}, format="json").status_code == 400
    assert admin.post(url, "not json", content_type="application/json").status_code == 400

    Evidence.objects.filter(execution__team=team, kind="file").update(
        retention_mode="compliance", retain_until=timezone.now() + timedelta(days=1)
    )
    locked = admin.post(url, body, format="json")
    assert locked.status_code == 409 and error_code(locked) == "retention_locked"
    Evidence.objects.filter(execution__team=team).update(retention_mode="governance")

    LegalHold.objects.create(team=team, scope="team", reason="Audit", placed_by=crew.compliance)
    held = admin.post(url, body, format="json")
    assert held.status_code == 409 and error_code(held) == "legal_hold_active"
    assert NarrativeExport.objects.get(pk=record.packaged.pk).status == "packaged"


def test_a_build_lost_with_its_worker_starts_over_after_the_time_limit(crew, record, settings):
    request = TeamDataExport.objects.create(
        team=record.packaged.execution.team, requested_by=crew.auditor, status="running", started_at=timezone.now()
    )
    assert team_data_export_run(request_id=request.pk) == "skipped"  # a live build is left alone
    lost = timezone.now() - timedelta(seconds=settings.DOSSIER_PACKAGING_TIME_LIMIT + 1)
    TeamDataExport.objects.filter(pk=request.pk).update(started_at=lost)
    assert team_data_export_run(request_id=request.pk) == "done"
    assert TeamDataExport.objects.get(pk=request.pk).counts["exports"] == 1
