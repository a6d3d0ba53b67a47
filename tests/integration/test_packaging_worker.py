"""Acceptance of docs/exports.md's packaging against real processes: a Celery worker on Redis and PostgreSQL packages an
export created through the API; the download is checked with bagit-python, sha512sum and openssl. A worker killed
mid-packaging is the fault drill in test_drill_dead_worker.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from knox.models import AuthToken

from exports.models import ExportArtifact, NarrativeExport
from exports.services.packaging import packaging_enqueue
from tests.conftest import which
from tests.exports.bagtools import flip_byte, repack
from tests.exports.factories import published_template_create
from tests.integration.conftest import wait_for

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
