"""A team data export requested through the API is built by a real Celery worker (Redis, PostgreSQL), kept
encrypted in storage, and downloads as a bundle that bagit-python, sha512sum and openssl accept
(docs/team-data.md)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings as django_settings

from exports.models import TeamDataExport
from exports.selectors.narrative_exports import signing_keys_list
from tests.approvals.factories import crew_for, published_snapshot
from tests.exports.team_records import team_record_create, validate_like_an_auditor
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.worker]


@pytest.fixture
def worker_env(tmp_path, settings, transactional_db):
    return {
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
        "ARTIFACT_STORAGE_BACKEND": "filesystem",
        "ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "DOSSIER_SIGNING_KEY_SECRET": django_settings.DOSSIER_SIGNING_KEY_SECRET,
        "FILE_UPLOAD_TEMP_DIR": "",
    }


def test_worker_builds_a_requested_team_export_that_the_validators_accept(
    celery_worker_process, worker_env, client_for, team, tmp_path
):
    published_snapshot()
    crew = crew_for(team)
    team_record_create(team, crew)
    worker = celery_worker_process(worker_env)
    client = client_for(crew.compliance)

    response = client.post("/api/governance/teams/alpha/data-export", format="json")
    assert response.status_code == 202, response.content
    request_id = response.json()["id"]
    wait_for(
        lambda: TeamDataExport.objects.get(pk=request_id).status in {"done", "failed"},
        timeout=120,
        what=f"the team data export\n{worker.log()[-3000:]}",
    )
    status = client.get(response.json()["status_url"]).json()
    assert status["status"] == "done", (status, worker.log()[-3000:])
    assert "exports.build_team_data_export" in worker.log()

    download = client.get(status["download_url"])
    assert download.status_code == 200
    archive = tmp_path / f"{status['bag_name']}.tar.zst"
    archive.write_bytes(b"".join(download.streaming_content))
    key = next(key for key in signing_keys_list() if key.key_id == status["key_id"])
    bag = validate_like_an_auditor(archive, key.public_key_pem, tmp_path)
    manifest = json.loads((bag / "data" / "manifest.json").read_text())
    assert manifest["counts"] == status["counts"]
    assert manifest["counts"]["bundles"] == 1 and manifest["counts"]["evidence_files"] == 2
