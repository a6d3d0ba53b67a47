"""More than one machine (docs/deployment.md): the web process (gunicorn) and two Celery workers, each started in
its own directory with its own var/, temporary and artifact directories, sharing only PostgreSQL, Redis, S3 (a
moto server) and one SECRET_KEY + keyring passed in the environment. Exports created, uploaded to and approved
through the HTTP API (password re-authentication included) are each packaged exactly once by one of the workers
and download through the web process with the uploaded file inside."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import zstandard

from exports.models import ExportArtifact, NarrativeExport, PackagingRun
from tests.approvals.factories import crew_for, published_snapshot
from tests.factories import PASSWORD
from tests.integration.conftest import ROOT, WorkerProcess, database_url_for_current_test_db, start_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.postgres]

# Ports of the drill's own services (docs/deployment.md): the S3 server and the web process.
PORT_BASE = int(os.environ.get("DOSSIER_TEST_PORT_BASE", "8240"))
MOTO_PORT, WEB_PORT = PORT_BASE + 1, PORT_BASE + 2
EXPORTS = 4
SESSIONS = "/api/experiment-console/sessions"
PRODUCTION_HASHERS = [
    "config.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]


def _wait_http(url: str, process: subprocess.Popen, log: Path, *, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.3)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> Iterator[str]:
    executable = Path(sys.executable).with_name("moto_server")
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [str(executable), "-H", "127.0.0.1", "-p", str(MOTO_PORT)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{MOTO_PORT}"
    _wait_http(endpoint, process, log)
    yield endpoint
    _stop(process)


def _host_dir(root: Path, name: str) -> Path:
    """A host's own disk: nothing under it is visible to the other hosts."""
    host = root / name
    for sub in ("var", "tmp", "artifacts", "problems", "static"):
        (host / sub).mkdir(parents=True)
    return host


def _host_env(host: Path, shared: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **shared,
        "DOSSIER_VAR_DIR": str(host / "var"),
        "DOSSIER_PROBLEMS_DIR": str(host / "problems"),
        "FILE_UPLOAD_TEMP_DIR": str(host / "tmp"),
        "ARTIFACT_ROOT": str(host / "artifacts"),  # unused with S3: any object landing here is a local-disk leak
        "STATIC_ROOT": str(host / "static"),
        "EMAIL_FILE_PATH": str(host / "var" / "mail"),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class Deployment:
    web: str
    hosts: dict[str, Path]
    workers: list[WorkerProcess]
    s3: object
    bucket: str


@pytest.fixture
def deployment(transactional_db, s3_server, tmp_path) -> Iterator[Deployment]:
    import boto3

    from exports.crypto import generate_local_document

    bucket = f"dossier-{uuid.uuid4().hex[:8]}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=s3_server, **credentials)
    s3.create_bucket(Bucket=bucket)
    queue = f"drill-{uuid.uuid4().hex[:8]}"
    shared = {  # everything the hosts share, and only that
        "DJANGO_SETTINGS_MODULE": "tests.integration.host_settings",
        "DOSSIER_DRILL_QUEUE": queue,
        "DATABASE_URL": database_url_for_current_test_db(),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DOSSIER_KEYRING": json.dumps(generate_local_document()),
        "ARTIFACT_STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DOSSIER_SIGNING_KEY_SECRET": "",
    }
    hosts = {name: _host_dir(tmp_path, name) for name in ("web", "worker-a", "worker-b")}
    web_log = hosts["web"] / "gunicorn.log"
    web_env = {**_host_env(hosts["web"], shared), "WEB_CONCURRENCY": "2", "WEB_THREADS": "4"}
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]
    with web_log.open("ab") as out:
        web = subprocess.Popen(  # noqa: S603 - fixed argv
            [*command, "--bind", f"127.0.0.1:{WEB_PORT}", "config.wsgi"],
            cwd=hosts["web"],
            env=web_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    workers: list[WorkerProcess] = []
    try:
        _wait_http(f"http://127.0.0.1:{WEB_PORT}/accounts/login/", web, web_log)
        for name in ("worker-a", "worker-b"):
            env = _host_env(hosts[name], shared)
            workers.append(start_worker(queue, hosts[name] / "celery.log", env, cwd=hosts[name], name=name))
        yield Deployment(f"http://127.0.0.1:{WEB_PORT}", hosts, workers, s3, bucket)
    finally:
        for worker in workers:
            worker.kill(signal.SIGTERM)
        _stop(web)


def _session(base: str, username: str) -> requests.Session:
    """Signs in through the web process's token endpoint (the password is checked there)."""
    session = requests.Session()
    response = session.post(f"{base}/api/auth/token", json={"username": username, "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    session.headers["Authorization"] = f"Token {response.json()['token']}"
    return session


def _create_export(author: requests.Session, base: str, team, number: int) -> tuple[int, int, bytes]:
    """An execution with a timeline, an uploaded file and a note; returns (execution, export, file content)."""
    execution = author.post(f"{base}{SESSIONS}", json={"title": f"Lot {number}", "team": team.slug}, timeout=30)
    assert execution.status_code == 201, execution.text
    url = f"{base}{SESSIONS}/{execution.json()['id']}"
    events = [{"event_type": "step.completed", "payload": {"step": f"thaw-{number}"}}]
    assert author.post(f"{url}/events", json=events, timeout=30).status_code == 201
    content = f"well,od600\nA{number},0.41{number}\n".encode() + secrets.token_bytes(256 * 1024)
    files = {"file": (f"plate-{number}.bin", content, "application/octet-stream")}
    upload = author.post(f"{url}/files", files=files, data={"title": f"Plate {number}"}, timeout=60)
    assert upload.status_code == 201, upload.text
    note = {"execution": execution.json()["id"], "title": "Bench notes", "body": f"Lot {number} nominal."}
    entry = author.post(f"{base}/api/notebook/entries", json=note, timeout=30)
    assert entry.status_code == 201, entry.text
    selection = [{"kind": "file", "id": upload.json()["id"]}, {"kind": "notebook_entry", "id": entry.json()["id"]}]
    created = author.post(f"{url}/exports/narrative", json={"evidence": selection}, timeout=30)
    assert created.status_code == 201, created.text
    return execution.json()["id"], created.json()["id"], content


def _approve(signers: list[tuple[requests.Session, str]], base: str, execution_id: int, export_id: int) -> None:
    url = f"{base}{SESSIONS}/{execution_id}/exports/narrative/{export_id}"
    for signer, username in signers:
        ladder = signer.get(f"{url}/approvals", timeout=30).json()["ladder"]
        active = next(stage for stage in ladder["stages"] if stage["status"] == "in_progress")
        body = {  # both signature components: the service decides when the username is needed (docs/part11.md)
            "decision": "approve",
            "username": username,
            "password": PASSWORD,
            "meaning": "",
            "expected_stage_id": active["id"],
        }
        response = signer.post(f"{url}/approve", json=body, timeout=60)
        assert response.status_code == 200, response.text


def _bundle_files(archive: bytes) -> dict[str, bytes]:
    raw = zstandard.ZstdDecompressor().decompress(archive, max_output_size=1 << 28)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _local_files(host: Path) -> list[str]:
    """Files a host left on its own disk besides its logs."""
    return sorted(str(path.relative_to(host)) for path in host.rglob("*") if path.is_file() and path.suffix != ".log")


def test_web_and_two_workers_share_only_database_broker_storage_and_keys(team, deployment, settings):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
    crew = crew_for(team)
    published_snapshot()
    people = [crew.author, crew.reviewer, crew.qa, crew.compliance, crew.auditor]
    legacy = make_password(PASSWORD, hasher="pbkdf2_sha256")
    get_user_model().objects.filter(pk__in=[p.pk for p in people]).update(password=legacy)
    base = deployment.web
    author, auditor = _session(base, crew.author.username), _session(base, crew.auditor.username)
    signers = [(_session(base, user.username), user.username) for user in (crew.reviewer, crew.qa, crew.compliance)]
    hashes = get_user_model().objects.filter(pk__in=[p.pk for p in people]).values_list("password", flat=True)
    assert all(h.startswith("argon2$argon2id$") for h in hashes)  # upgraded at sign-in on the web host

    created = [_create_export(author, base, team, number) for number in range(EXPORTS)]
    started = time.monotonic()
    for execution_id, export_id, _ in created:
        _approve(signers, base, execution_id, export_id)
    ids = [export_id for _, export_id, _ in created]

    def all_packaged() -> bool:
        states = dict(NarrativeExport.objects.filter(pk__in=ids).values_list("pk", "status"))
        assert "failed" not in states.values(), [w.log()[-3000:] for w in deployment.workers]
        return set(states.values()) == {"packaged"}

    wait_for(all_packaged, timeout=180, what="both workers to package every export")
    print(f"{EXPORTS} exports packaged {time.monotonic() - started:.1f}s after the first approval")

    worker_ids = {f":{w.process.pid}" for w in deployment.workers}
    for (execution_id, export_id, content), name in zip(created, range(EXPORTS), strict=True):
        runs = list(PackagingRun.objects.filter(export_id=export_id).values_list("status", "worker"))
        assert [status for status, _ in runs] == ["succeeded"], runs  # packaged exactly once
        assert any(runs[0][1].endswith(pid) for pid in worker_ids), runs
        artifact = ExportArtifact.objects.get(export_id=export_id)
        response = auditor.get(f"{base}{SESSIONS}/{execution_id}/exports/narrative/{export_id}/artifact", timeout=60)
        assert response.status_code == 200, response.text
        assert hashlib.sha256(response.content).hexdigest() == artifact.sha256
        bundled = _bundle_files(response.content)
        assert content in bundled.values(), f"export {name}: the uploaded file is not in the bundle"
    print("packaged by", sorted({w for _, w in PackagingRun.objects.values_list("status", "worker")}))

    for name, host in deployment.hosts.items():
        assert _local_files(host) == [], f"{name} relied on its own disk: {_local_files(host)}"
    keys = [item["Key"] for item in deployment.s3.list_objects_v2(Bucket=deployment.bucket)["Contents"]]
    assert len([key for key in keys if "/evidence/" in key]) == EXPORTS
    assert len(ExportArtifact.objects.filter(export_id__in=ids)) == EXPORTS
