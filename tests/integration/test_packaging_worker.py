"""Acceptance of docs/exports.md's packaging against real processes: a Celery worker on Redis and PostgreSQL packages an
export created through the API; the download is checked with bagit-python, sha512sum and openssl; a worker killed
mid-packaging leaves no partial artifact and a new one finishes the job."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from knox.models import AuthToken

from exports.crypto import MAGIC
from exports.models import ExportArtifact, NarrativeExport, PackagingRun
from exports.services.packaging import exports_sweep_stuck, packaging_enqueue
from exports.storage import STAGING_PREFIX
from tests.conftest import which
from tests.exports.bagtools import flip_byte, repack
from tests.exports.factories import published_template_create
from tests.integration.conftest import wait_for
from tests.stored import plaintext_bytes

pytestmark = [pytest.mark.worker]

FILE_SIZE = 50 * 1024 * 1024
MARKER = b"PLAINTEXT-MARKER-q7Zx"  # planted in evidence and events; must never be found in storage
EVENT_COUNT = 10_000


@pytest.fixture
def worker_env(tmp_path, settings, transactional_db):
    """Environment that points a worker at this test's storage and keys, with a test packaging gate."""
    published_template_create()
    settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow"]
    return {
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
        "ARTIFACT_STORAGE_BACKEND": "filesystem",
        "ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "DOSSIER_SIGNING_KEY_SECRET": django_settings.DOSSIER_SIGNING_KEY_SECRET,
        "FILE_UPLOAD_TEMP_DIR": "",
    }


def _big_file(path: Path, size: int) -> Path:
    """Deterministic, half compressible: CSV-like text followed by pseudo-random bytes."""
    with open(path, "wb") as out:
        line = b"well,od600,viability_pct,operator\n" + (b"A1,0.412,93.1,bench-2\n" + MARKER + b"\n") * 2048
        written = 0
        while written < size // 2:
            out.write(line[: size // 2 - written])
            written += min(len(line), size // 2 - written)
        seed = hashlib.sha256(b"dossier").digest()
        while written < size:
            seed = hashlib.sha512(seed).digest()
            block = (seed * 16384)[: size - written]
            out.write(block)
            written += len(block)
    return path


def _create_through_api(client, team, tmp_path, *, events: int, file_size: int) -> NarrativeExport:
    response = client.post("/api/experiment-console/sessions", {"title": "Stability study lot 7", "team": team.slug})
    assert response.status_code == 201, response.content
    execution_id = response.json()["id"]
    base = f"/api/experiment-console/sessions/{execution_id}"
    batch = 5000
    for start in range(0, events, batch):
        payload = [
            {
                "event_type": "measurement.recorded",
                "payload": {
                    "index": i,
                    "od600": round(0.3 + (i % 97) / 1000, 3),
                    "by": f"tech{i % 7}@lab.example",
                    "note": MARKER.decode(),
                },
            }
            for i in range(start, min(events, start + batch))
        ]
        assert client.post(f"{base}/events", payload, format="json").status_code == 201
    with open(_big_file(tmp_path / "plate-reads.csv", file_size), "rb") as handle:
        upload = client.post(f"{base}/files", {"file": handle, "title": "Plate reads"}, format="multipart")
    assert upload.status_code == 201, upload.content
    selection = [{"kind": "file", "id": upload.json()["id"]}]
    for n in range(3):
        note = {"execution": execution_id, "title": f"Bench notes {n}", "body": f"Day {n}: no deviations."}
        response = client.post("/api/notebook/entries", note, format="json")
        selection.append({"kind": "notebook_entry", "id": response.json()["id"]})
    for n in range(2):
        metric = {
            "execution": execution_id,
            "kind": "qc_metric",
            "title": f"QC {n}",
            "data": {"z_prime": 0.7 + n / 100},
        }
        response = client.post("/api/data/evidence", metric, format="json")
        selection.append({"kind": "qc_metric", "id": response.json()["id"]})
    response = client.post(f"{base}/exports/narrative", {"evidence": selection}, format="json")
    assert response.status_code == 201, response.content
    return NarrativeExport.objects.get(pk=response.json()["id"])


def _run(*command, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_worker_packages_an_api_export_that_independent_tools_accept(
    celery_worker_process, worker_env, client_for, team, member, live_server, tmp_path
):
    curl, openssl, sha512sum = which("curl"), which("openssl"), which("sha512sum")
    scientist = member("scientist", username="sci")
    client = client_for(scientist)
    export = _create_through_api(client, team, tmp_path, events=EVENT_COUNT, file_size=FILE_SIZE)
    worker = celery_worker_process(worker_env)

    packaging_enqueue(export=export)  # what approvals' dispatch does once the ladder clears
    wait_for(
        lambda: NarrativeExport.objects.get(pk=export.pk).status in {"packaged", "failed"},
        timeout=240,
        what=f"packaging by the worker\n{worker.log()[-3000:]}",
    )
    export.refresh_from_db()
    assert export.status == "packaged", worker.log()[-3000:]
    artifact = ExportArtifact.objects.get(export=export)
    assert "exports.package_execution_narrative_export" in worker.log()

    token = AuthToken.objects.create(user=scientist)[1]
    archive = tmp_path / "download.tar.zst"
    headers = tmp_path / "headers.txt"
    path = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/artifact"
    result = _run(
        curl, "-sS", "-f", "-H", f"Authorization: Token {token}", "-D", str(headers), "-o", str(archive),
        live_server.url + path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == artifact.sha256
    assert f'etag: "{artifact.sha256}"' in headers.read_text().lower()

    bag_parent = tmp_path / "unpacked"
    bag_parent.mkdir()
    assert _run("tar", "-I", "zstd", "-xf", str(archive), "-C", str(bag_parent)).returncode == 0
    bag = bag_parent / f"dossier-{export.pk}-v1"
    validation = _run(sys.executable, "-m", "bagit", "--validate", str(bag))
    assert validation.returncode == 0, validation.stderr
    sums = _run(sha512sum, "-c", "--quiet", "manifest-sha512.txt", cwd=bag)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    assert _run(sha512sum, "-c", "--quiet", "tagmanifest-sha512.txt", cwd=bag).returncode == 0
    assert len((bag / "data" / "events.ndjson").read_text().splitlines()) >= EVENT_COUNT
    assert (bag / "data" / "attachments" / "file").is_dir()

    keys = _run(curl, "-sS", "-f", live_server.url + "/api/exports/signing-keys")
    key = next(k for k in json.loads(keys.stdout)["keys"] if k["key_id"] == artifact.signing_key.key_id)
    (tmp_path / "pub.pem").write_text(key["public_key_pem"])
    signature = _run(
        openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin",
        "-in", str(bag / "tagmanifest-sha512.txt"), "-sigfile", str(bag / "signatures" / "tagmanifest-sha512.txt.sig"),
    )  # fmt: skip
    assert signature.returncode == 0 and "Signature Verified Successfully" in signature.stdout

    # Encrypted at rest: the marker is in the downloaded bag, yet no stored object holds it (docs/encryption.md).
    assert MARKER in (bag / "data" / "events.ndjson").read_bytes()
    assert any(MARKER in path.read_bytes() for path in (bag / "data" / "attachments" / "file").iterdir())
    stored = [path for path in (tmp_path / "artifacts").rglob("*") if path.is_file()]
    assert len(stored) >= 2 and not [path for path in stored if MARKER in path.read_bytes()]

    call_command("verify_export", str(export.pk))
    flip_byte(bag / "data" / "events.ndjson", offset=100)
    with pytest.raises(SystemExit) as exited:
        call_command("verify_export", str(repack(bag, tmp_path / "tampered.tar.gz")))
    assert exited.value.code == 3

    call_command("replay_export", str(export.pk), "--dry-run")  # exits 3 unless the digest is identical


def test_a_worker_killed_mid_packaging_leaves_no_partial_artifact(
    celery_worker_process, worker_env, client_for, team, member, tmp_path
):
    scientist = member("scientist", username="sci")
    export = _create_through_api(client_for(scientist), team, tmp_path, events=50, file_size=FILE_SIZE)
    slow = celery_worker_process({**worker_env, "DOSSIER_PACKAGING_READ_LIMIT_BPS": str(2 * 1024 * 1024)})
    packaging_enqueue(export=export)
    staging = tmp_path / "artifacts" / STAGING_PREFIX.rstrip("/")

    def building() -> bool:
        running = PackagingRun.objects.filter(export=export, status="running").exists()
        return running and staging.exists() and any(staging.glob(f"{export.pk}-v1-*.partial"))

    wait_for(building, timeout=120, what=f"the slow worker to start writing\n{slow.log()[-2000:]}")
    time.sleep(3)  # well inside the ~25 s the throttled build takes
    slow.kill()  # SIGKILL mid-packaging
    export.refresh_from_db()
    assert export.status == "packaging"
    assert not ExportArtifact.objects.filter(export=export).exists()
    final_dir = tmp_path / "artifacts" / team.slug / str(export.execution_id) / str(export.pk)
    assert not final_dir.exists() or not any(final_dir.rglob("*.tar.*"))

    fresh = celery_worker_process(worker_env)
    assert exports_sweep_stuck(older_than=timedelta(0)) == [export.pk]
    wait_for(
        lambda: NarrativeExport.objects.get(pk=export.pk).status == "packaged",
        timeout=180,
        what=f"the new worker to finish\n{fresh.log()[-3000:]}",
    )
    assert ExportArtifact.objects.filter(export=export).count() == 1
    runs = list(
        PackagingRun.objects.filter(export=export).order_by("attempt").values_list("attempt", "status", "error_code")
    )
    assert runs == [(1, "abandoned", "worker_lost"), (2, "succeeded", "")]
    assert NarrativeExport.objects.get(pk=export.pk).packaging_attempts == 2
    assert list(staging.iterdir()) == []
    published = list(final_dir.rglob("*"))
    assert [p.name for p in published if p.is_file()] == [f"dossier-{export.pk}-v1.tar.zst"]
    artifact = ExportArtifact.objects.get(export=export)
    stored = (final_dir / "v1" / f"dossier-{export.pk}-v1.tar.zst").read_bytes()
    assert stored.startswith(MAGIC)  # encrypted at rest; its plaintext is the recorded archive
    assert hashlib.sha256(plaintext_bytes(artifact.storage_path)).hexdigest() == artifact.sha256
    assert os.environ.get("CELERY_BROKER_URL", "").startswith("redis://")
