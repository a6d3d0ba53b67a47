"""Fault drill: the artifact storage (a small tmpfs) fills up at upload and at packaging (docs/errors.md,
docs/operations.md "Storage full").

An upload answers 507 ``storage_full`` and leaves nothing behind; packaging retries with backoff through the task's
retry path, then fails with ``storage_full`` (not ``internal_error``) and leaves no staged bytes; once space is
freed, a re-queued export is packaged."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from exports.models import ExportArtifact, NarrativeExport, PackagingRun
from exports.services.evidence import evidence_file_store
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.services.packaging import packaging_enqueue
from exports.storage import STAGING_PREFIX
from tests.conftest import unavailable
from tests.exports.factories import published_template_create
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.worker]

DISK_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """An 8 MB tmpfs of its own (needs the right to mount, which the CI container's root has)."""
    path = tmp_path / "small-disk"
    path.mkdir()
    mounted = subprocess.run(  # noqa: S603 - fixed argv
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0750", "tmpfs", str(path)],  # noqa: S607
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)  # noqa: S603, S607


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def _use_disk(settings, root: Path) -> None:
    artifacts = {**settings.STORAGES["artifacts"], "OPTIONS": {"location": str(root / "artifacts")}}
    settings.STORAGES = {**settings.STORAGES, "artifacts": artifacts, "default": artifacts}


def test_an_upload_to_full_storage_answers_507_and_leaves_nothing(small_disk, settings, client_for, execution):
    client = client_for(execution.owner)
    path = f"/api/experiment-console/sessions/{execution.pk}/files"
    _use_disk(settings, small_disk)
    big = SimpleUploadedFile("plate.bin", os.urandom(12 * 1024 * 1024), content_type="application/octet-stream")
    response = client.post(path, {"file": big, "title": "Plate"}, format="multipart")
    assert response.status_code == 507, response.content
    assert response.json()["error"]["code"] == "storage_full"
    assert _files_under(small_disk) == []

    settings.FILE_UPLOAD_TEMP_DIR = str(small_disk)  # the upload's own temporary file cannot be written either
    big.seek(0)
    response = client.post(path, {"file": big, "title": "Plate"}, format="multipart")
    assert (response.status_code, response.json()["error"]["code"]) == (507, "storage_full")
    assert _files_under(small_disk) == []

    small = SimpleUploadedFile("plate.csv", b"well,od600\nA1,0.41\n", content_type="text/csv")
    response = client.post(path, {"file": small, "title": "Plate"}, format="multipart")
    assert response.status_code == 201, response.content  # the same storage serves again once there is room


def test_packaging_on_a_full_disk_retries_then_fails_storage_full(
    small_disk, settings, celery_worker_process, member, team, tmp_path
):
    from exports.services.executions import execution_create

    published_template_create()
    settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow"]
    _use_disk(settings, small_disk)
    scientist = member("scientist", username="sci")
    execution = execution_create(team=team, title="Full disk", owner=scientist, protocol_template_key="assay")
    content = os.urandom(3 * 1024 * 1024)  # incompressible: the bundle needs as much room again
    upload = SimpleUploadedFile("reads.bin", content, content_type="application/octet-stream")
    evidence = evidence_file_store(
        execution=execution, actor=scientist, upload=upload, sha256=hashlib.sha256(content).hexdigest()
    )
    export = export_create(execution=execution, actor=scientist, evidence=[EvidenceRef(kind="file", id=evidence.pk)])
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 1024 * 1024))  # leave 1 MB: less than the bundle

    worker = celery_worker_process(
        {
            "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
            "ARTIFACT_STORAGE_BACKEND": "filesystem",
            "ARTIFACT_ROOT": str(small_disk / "artifacts"),
            "DOSSIER_SIGNING_KEY_SECRET": django_settings.DOSSIER_SIGNING_KEY_SECRET,
            "DOSSIER_PACKAGING_MAX_RETRIES": "2",
            "FILE_UPLOAD_TEMP_DIR": "",
        }
    )
    packaging_enqueue(export=export)
    wait_for(
        lambda: NarrativeExport.objects.get(pk=export.pk).status == "failed",
        timeout=90,
        what=f"packaging to give up\n{worker.log()[-3000:]}",
    )
    runs = list(PackagingRun.objects.filter(export=export).order_by("attempt").values_list("status", "error_code"))
    assert runs == [("retrying", "storage_full"), ("retrying", "storage_full"), ("failed", "storage_full")]
    export.refresh_from_db()
    assert export.packaging_queue_state["error_code"] == "storage_full"
    staging = small_disk / "artifacts" / STAGING_PREFIX.rstrip("/")
    assert not staging.exists() or not any(staging.iterdir())

    filler.unlink()  # the operator frees space and queues it again (docs/operations.md, "Storage full")
    packaging_enqueue(export=export)
    wait_for(
        lambda: NarrativeExport.objects.get(pk=export.pk).status == "packaged",
        timeout=60,
        what=f"packaging once there is room\n{worker.log()[-3000:]}",
    )
    assert ExportArtifact.objects.filter(export=export).count() == 1
