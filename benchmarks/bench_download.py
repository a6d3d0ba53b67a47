"""Artifact download benchmark: verification (sha256 of the stored archive) plus streaming to a client, against
``openssl dgst -sha256`` over the same file, measured side by side.

usage: python benchmarks/bench_download.py [--size-mib 1024] [--rounds 3] [--quick]

The artifact is 1 GiB of incompressible bytes (a packaged archive), cached under var/bench/. Two clients:
  (a) HTTP: gunicorn (one sync worker) serving the real endpoint, curl writing to /dev/null
  (b) in-process: Django's test client iterating the streamed response
Both go through the artifact endpoint: authorisation, retention check, stream-hash verification, lifecycle
event, then the streamed body. Rounds are interleaved with the openssl baseline; best time of each is kept.
Target: download throughput >= 0.4 x openssl's sha256 throughput. A report: always exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from _data import CACHE, ROOT, artifact_file

STORAGE = CACHE / "download-storage"
TARGET = 0.4

os.environ["ARTIFACT_STORAGE_BACKEND"] = "filesystem"
os.environ["ARTIFACT_ROOT"] = str(STORAGE)

from _django import setup, verdict  # noqa: E402


def fixture(source: Path):
    """A packaged export whose artifact is ``source`` (placed in artifact storage), and a user who may read it."""
    from django.utils import timezone
    from knox.models import AuthToken

    from exports.models import ExportArtifact, NarrativeExport
    from exports.services.executions import execution_create
    from exports.services.signing_keys import signing_key_active
    from exports.storage import artifact_name
    from tests.factories import TeamFactory, member_of

    label = f"bench-dl-{time.time_ns()}"
    team = TeamFactory(slug=label)
    user = member_of(team, "scientist", username=label)
    execution = execution_create(team=team, title="download bench", owner=user)
    export = NarrativeExport.objects.create(execution=execution, version=1, author=user, status="packaged")
    name = artifact_name(
        team_slug=team.slug, execution_id=execution.pk, export_id=export.pk, version=1, compression="zstd"
    )
    target = STORAGE / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    sha256 = _sha256(source)
    ExportArtifact.objects.create(
        export=export,
        storage_path=name,
        bag_name=f"dossier-{export.pk}-v1",
        sha256=sha256,
        size=source.stat().st_size,
        compression="zstd",
        signing_key=signing_key_active(),
        payload_oxum="0.0",
        narrative_sha256="0" * 64,
        retain_until=timezone.now() + timedelta(days=1),
    )
    url = f"/api/experiment-console/sessions/{execution.pk}/exports/narrative/{export.pk}/artifact"
    return user, AuthToken.objects.create(user=user)[1], url


def _sha256(path: Path) -> str:
    result = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(path)], check=True, capture_output=True, text=True)
    return result.stdout.split()[0]


def time_openssl(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_in_process(user, url: str, size: int) -> float:
    from django.test import Client

    client = Client()
    client.force_login(user)
    started = time.perf_counter()
    response = client.get(url)
    received = sum(len(chunk) for chunk in response.streaming_content)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and received == size, (response.status_code, received)
    return elapsed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "600"],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, base
        time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def time_http(base: str, url: str, token: str, size: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "-H",
            f"Authorization: Token {token}",
            base + url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    assert int(result.stdout) == size, result.stdout
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="128 MiB, 2 rounds")
    args = parser.parse_args()
    size_mib, rounds = (128, 2) if args.quick else (args.size_mib, args.rounds)

    setup()
    source = artifact_file(size_mib)
    size = source.stat().st_size
    user, token, url = fixture(source)
    server, base = start_gunicorn()
    try:
        best = {"openssl": float("inf"), "http": float("inf"), "in_process": float("inf")}
        time_openssl(source)  # warm the page cache
        for _ in range(rounds):
            best["openssl"] = min(best["openssl"], time_openssl(source))
            best["http"] = min(best["http"], time_http(base, url, token, size))
            best["in_process"] = min(best["in_process"], time_in_process(user, url, size))
    finally:
        server.terminate()
        server.wait(timeout=30)

    mb = size / 1e6
    print(f"artifact: {size_mib} MiB, best of {rounds} rounds")
    print(f"  openssl dgst -sha256           {best['openssl']:7.2f} s  {mb / best['openssl']:8.0f} MB/s")
    for key, label in (("http", "download via gunicorn + curl"), ("in_process", "download via test client")):
        ratio = best["openssl"] / best[key]
        print(
            f"  {label:30} {best[key]:7.2f} s  {mb / best[key]:8.0f} MB/s   ratio {ratio:.2f} "
            f"(target >= {TARGET}) {verdict(ratio, TARGET)}"
        )


if __name__ == "__main__":
    main()
