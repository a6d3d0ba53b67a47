"""The scheduled fixity check on a real Celery worker (Redis, PostgreSQL): a flipped byte in a stored evidence file is
found by the task beat sends, recorded, and logged to problems/fixity.log (docs/storage-tiers-and-fixity.md)."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from exports.events import EventType
from exports.models import Evidence, ExecutionEvent
from exports.services.evidence import evidence_file_store
from exports.services.executions import execution_create
from exports.tasks import verify_artifacts
from governance.models import ScheduledJobRun
from tests.integration.conftest import wait_for
from tests.stored import flip_stored_byte

pytestmark = [pytest.mark.worker]


def test_the_worker_finds_a_flipped_byte(celery_worker_process, team, member, tmp_path):
    scientist = member("scientist", username="sci")
    execution = execution_create(team=team, title="Stability", owner=scientist)
    content = b"well,od600\n" + b"A1,0.41\n" * 5000
    evidence = evidence_file_store(
        execution=execution,
        actor=scientist,
        upload=SimpleUploadedFile("reads.csv", content, content_type="text/csv"),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    flip_stored_byte(evidence.storage_path, 4000)
    worker = celery_worker_process(
        {"ARTIFACT_ROOT": str(tmp_path / "artifacts"), "DOSSIER_PROBLEMS_DIR": str(settings.PROBLEMS_DIR)}
    )

    verify_artifacts.delay()
    wait_for(lambda: ScheduledJobRun.objects.filter(job="fixity").exists(), timeout=90, what=worker.log()[-3000:])
    run = ScheduledJobRun.objects.get(job="fixity")
    assert run.outcome == "failed" and run.rows == 1
    assert "exports.verify_artifacts" in worker.log()
    assert Evidence.objects.get(pk=evidence.pk).fixity_status == "failed"
    event = ExecutionEvent.objects.get(execution=execution, event_type=EventType.ARTIFACT_INTEGRITY_FAILED)
    assert event.payload["evidence_id"] == evidence.pk and event.payload["outcome"] == "stored_digest_mismatch"
    (line,) = (settings.PROBLEMS_DIR / "fixity.log").read_text().splitlines()
    assert json.loads(line)["id"] == evidence.pk
