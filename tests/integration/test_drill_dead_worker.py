"""Fault drill: a worker SIGKILLed in the middle of packaging a 300 MB evidence file, then a new worker.

The new worker notices the lost attempt by itself (its takeover timer: no beat, no sweeper, no broker
redelivery) and packages the export: exactly one artifact, no staged bytes left, the recovery time printed
(docs/operations.md, "Dead worker")."""

from __future__ import annotations

import hashlib
import time

import pytest
from django.conf import settings as django_settings
from django.core.files import File

from exports.crypto import MAGIC
from exports.events import EventType
from exports.models import ExecutionEvent, ExportArtifact, NarrativeExport, PackagingRun
from exports.services.evidence import evidence_file_store
from exports.services.executions import execution_create
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.services.packaging import packaging_enqueue
from exports.storage import STAGING_PREFIX
from tests.exports.factories import published_template_create
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.worker]

EVIDENCE_BYTES = 300 * 1024 * 1024
THROTTLE_BPS = 40 * 1024 * 1024  # the first worker reads for ~7.5 s, so the kill lands mid-run


def _sparse_evidence(path, size: int) -> tuple[str, int]:
    """A 300 MB file made in an instant: a header, then a hole the filesystem does not store."""
    with open(path, "wb") as out:
        out.write(b"plate,well,od600\n" + b"P1,A1,0.412\n" * 64)
        out.truncate(size)
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest(), size


@pytest.fixture
def big_export(transactional_db, settings, tmp_path, member, team):
    published_template_create()
    settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow"]
    scientist = member("scientist", username="sci")
    execution = execution_create(team=team, title="Stability lot 9", owner=scientist, protocol_template_key="assay")
    sha256, size = _sparse_evidence(tmp_path / "plate-reads.csv", EVIDENCE_BYTES)
    with open(tmp_path / "plate-reads.csv", "rb") as handle:
        upload = File(handle, name="plate-reads.csv")
        upload.size = size
        evidence = evidence_file_store(execution=execution, actor=scientist, upload=upload, sha256=sha256)
    return export_create(execution=execution, actor=scientist, evidence=[EvidenceRef(kind="file", id=evidence.pk)])


def test_a_worker_killed_mid_packaging_is_taken_over_by_a_new_worker(celery_worker_process, big_export, tmp_path, team):
    export = big_export
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
        "ARTIFACT_STORAGE_BACKEND": "filesystem",
        "ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "DOSSIER_SIGNING_KEY_SECRET": django_settings.DOSSIER_SIGNING_KEY_SECRET,
        "FILE_UPLOAD_TEMP_DIR": "",
    }
    doomed = celery_worker_process({**env, "DOSSIER_PACKAGING_READ_LIMIT_BPS": str(THROTTLE_BPS)})
    packaging_enqueue(export=export)
    staging = tmp_path / "artifacts" / STAGING_PREFIX.rstrip("/")

    def writing() -> bool:
        run = PackagingRun.objects.filter(export=export, status="running").first()
        return run is not None and any(staging.glob(f"{export.pk}-v1-r{run.pk}-*.partial"))

    wait_for(writing, timeout=120, what=f"the first worker to start writing\n{doomed.log()[-2000:]}")
    time.sleep(2)  # well inside the throttled read
    doomed.kill()  # SIGKILL
    killed_at = time.monotonic()
    lost = PackagingRun.objects.get(export=export)
    assert lost.status == "running" and any(staging.glob("*.partial"))

    rescuer = celery_worker_process(env)
    wait_for(
        lambda: NarrativeExport.objects.get(pk=export.pk).status in {"packaged", "failed"},
        timeout=120 + 60,  # the target: two minutes plus the packaging time
        what=f"the new worker to take over\n{rescuer.log()[-3000:]}",
    )
    recovery = time.monotonic() - killed_at
    print(f"\nrecovery from SIGKILL to a published bundle by another worker: {recovery:.1f} s")

    export.refresh_from_db()
    assert export.status == "packaged", rescuer.log()[-3000:]
    assert ExportArtifact.objects.filter(export=export).count() == 1
    runs = list(PackagingRun.objects.filter(export=export).order_by("attempt").values_list("status", "error_code"))
    assert runs == [("abandoned", "worker_lost"), ("succeeded", "")]
    assert not any(staging.iterdir())
    stored = [p for p in (tmp_path / "artifacts" / team.slug).rglob("*.tar.*") if p.is_file()]
    assert [p.name for p in stored] == [f"dossier-{export.pk}-v1.tar.zst"]
    assert stored[0].read_bytes()[: len(MAGIC)] == MAGIC  # encrypted at rest like any other
    taken = ExecutionEvent.objects.filter(event_type=EventType.PACKAGING_TAKEN_OVER, payload__export_id=export.pk)
    assert taken.count() == 1 and taken.get().payload["run_ids"] == [lost.pk]
    assert "took over" in rescuer.log()
