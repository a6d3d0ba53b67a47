"""End to end on PostgreSQL and Redis with a real Celery worker: create an export through the API, sign each
stage as a different user with their password, see packaging start only after the last signature, download the
bundle and find every signature in narrative.md and approvals.json; verify_export accepts it."""

import io
import json
import tarfile

import pytest
import zstandard
from django.core.management import call_command
from rest_framework.test import APIClient

from exports.models import NarrativeExport, PackagingRun
from tests.approvals.factories import crew_for, published_snapshot
from tests.factories import PASSWORD
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.worker]
SESSIONS = "/api/experiment-console/sessions"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def roles(transactional_db):
    from governance.choices import RoleKey
    from governance.models import Role

    for key, label in RoleKey.choices:  # transactional tests flush the roles the migration seeded
        Role.objects.get_or_create(key=key, defaults={"label": label})


def test_sign_every_stage_then_the_worker_packages_a_verifiable_bundle(roles, team, celery_worker_process, tmp_path):
    crew = crew_for(team)
    published_snapshot()
    author = client_for(crew.author)
    execution = author.post(SESSIONS, {"title": "Stability study lot 7", "team": team.slug}, format="json").json()
    base = f"{SESSIONS}/{execution['id']}"
    author.post(f"{base}/events", [{"event_type": "step.completed", "payload": {"step": "thaw"}}], format="json")
    note = author.post(
        "/api/notebook/entries", {"execution": execution["id"], "title": "Bench notes", "body": "All nominal."}
    ).json()
    created = author.post(
        f"{base}/exports/narrative", {"evidence": [{"kind": "notebook_entry", "id": note["id"]}]}, format="json"
    )
    assert created.status_code == 201, created.json()
    export = created.json()
    assert [s["status"] for s in export["ladder"]["stages"]] == ["in_progress", "pending", "pending"]

    worker = celery_worker_process(extra_env={"ARTIFACT_ROOT": str(tmp_path / "artifacts")})
    signers = [(crew.reviewer, "Reviewed"), (crew.qa, "Approved for release"), (crew.compliance, "Compliant")]
    for number, (user, meaning) in enumerate(signers, start=1):
        assert not PackagingRun.objects.filter(export_id=export["id"]).exists()
        assert NarrativeExport.objects.get(pk=export["id"]).status == "awaiting_approval"
        stage = client_for(user).get(f"{base}/exports/narrative/{export['id']}/approvals").json()["ladder"]
        active = next(s for s in stage["stages"] if s["status"] == "in_progress")
        response = client_for(user).post(
            f"{base}/exports/narrative/{export['id']}/approve",
            {
                "decision": "approve",
                "username": user.username,
                "password": PASSWORD,
                "meaning": meaning,
                "comment": f"Stage {number} checked.",
                "expected_stage_id": active["id"],
            },
            format="json",
        )
        assert response.status_code == 200, response.json()

    def packaged() -> bool:
        current = NarrativeExport.objects.get(pk=export["id"])
        assert current.status in ("queued", "packaging", "packaged"), (current.status, worker.log()[-3000:])
        return current.status == "packaged"

    try:
        wait_for(packaged, timeout=120, what="the worker to package the export")
    except BaseException:
        print(worker.log()[-5000:])
        raise
    download = client_for(crew.auditor).get(f"{base}/exports/narrative/{export['id']}/artifact")
    assert download.status_code == 200
    archive = b"".join(download.streaming_content)
    members = {}
    with tarfile.open(
        fileobj=io.BytesIO(zstandard.ZstdDecompressor().decompress(archive, max_output_size=1 << 28))
    ) as tar:
        for member in tar.getmembers():
            if member.name.endswith(("data/narrative.md", "data/approvals.json")):
                members[member.name.rsplit("/", 1)[-1]] = tar.extractfile(member).read().decode()
    narrative, approvals = members["narrative.md"], json.loads(members["approvals.json"])
    digest = NarrativeExport.objects.get(pk=export["id"]).narrative_digest
    assert len(approvals["signatures"]) == 3
    for (user, meaning), signature in zip(signers, approvals["signatures"], strict=True):
        assert signature["printed_name"] == user.get_full_name() and signature["meaning"] == meaning
        assert signature["narrative_digest"] == digest and signature["signed_at"].endswith("Z")
        assert user.get_full_name() in narrative and meaning in narrative
    assert narrative.count(digest) >= 3
    call_command("verify_export", str(export["id"]))
