"""Encryption at rest benchmark (docs/encryption.md): what encrypting storage costs packaging and downloads, and
that memory stays flat.

usage: python benchmarks/bench_encryption.py [--scale 0.1] [--size-mib 1024] [--rounds 3] [--quick]

Each figure is a ratio against a baseline measured in the same run, rounds interleaved, best time of each kept:

  (a) packaging: build_bundle over the evidence into a file, the evidence read decrypting from encrypted copies
      and the archive encrypted on its way out, against the same build from plaintext into plaintext
                                                                           target: (a) >= 0.9 x throughput
  (b) download: the artifact endpoint (Django test client) serving an encrypted artifact (decrypt-and-verify
      pass, then the decrypting stream), against openssl dgst -sha256 over the plaintext
                                                                           target: (b) >= 0.4 x throughput
  (c) peak RSS of a child process encrypting then decrypting-and-hashing 100 MiB, and the same for 1 GiB
                                                                           target: under 200 MB, within 20 %

Evidence for (a) comes from /work/shared/bench/make_evidence.py (deterministic), cached under var/bench/.
``--quick``: scale 0.02, a 128 MiB artifact, 2 rounds, RSS at 32 MiB and 256 MiB. A report: always exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, cast

from _data import CACHE, MIB, ROOT, artifact_file, evidence

STORAGE = CACHE / "encryption-storage"
KEYRING = CACHE / "encryption-keyring.json"
MB = 1e6

os.environ["ARTIFACT_STORAGE_BACKEND"] = "filesystem"
os.environ["ARTIFACT_ROOT"] = str(STORAGE)
os.environ["DOSSIER_KEYRING"] = str(KEYRING)
sys.path.insert(0, str(ROOT))


def keyring():
    from exports.crypto import generate_local_document, keyring_document_write, keyring_load

    if not KEYRING.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        keyring_document_write(str(KEYRING), generate_local_document())
    return keyring_load(str(KEYRING))


# --- (a) packaging ----------------------------------------------------------------------------------------------


def encrypted_evidence(directory: Path) -> Path:
    """Every evidence file encrypted once, as encrypting storage holds it."""
    from exports.crypto import EncryptingWriter

    target = directory.with_name(directory.name + "-encrypted")
    marker = target.with_name(target.name + ".done")
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    ring = keyring()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        out_path = target / path.relative_to(directory)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as source, open(out_path, "wb") as sink, EncryptingWriter(sink, ring) as out:
            while block := source.read(MIB):
                out.write(block)
    marker.write_text("ok")
    return target


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM): ru_maxrss would carry the parent's over the fork."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def child_package(directory: Path, encrypted: bool) -> None:
    """Runs in a fresh interpreter: build the bundle, print seconds and peak RSS as JSON."""
    from exports.bundle import BundleSpec, PayloadFile, build_bundle, generate_signer
    from exports.crypto import DecryptingReader, EncryptingWriter

    ring = keyring() if encrypted else None
    plain_dir = directory.with_name(directory.name.removesuffix("-encrypted"))
    files = sorted(path for path in plain_dir.rglob("*") if path.is_file())
    started = time.perf_counter()
    payload = [PayloadFile.from_bytes("narrative.md", b"# Benchmark dossier\n")]
    for path in files:
        relative = path.relative_to(plain_dir)
        if encrypted:
            stored = directory / relative
            payload.append(
                PayloadFile(
                    path=f"attachments/{relative}",
                    size=path.stat().st_size,
                    open=lambda stored=stored: DecryptingReader(open(stored, "rb"), ring),  # noqa: SIM115
                )
            )
        else:
            payload.append(PayloadFile.from_path(f"attachments/{relative}", path))
    spec = BundleSpec(
        name="dossier-1-v1",
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        bag_info=[("External-Identifier", "1"), ("Bag-Group-Identifier", "1")],
        payload=payload,
        export_metadata=lambda digests: {"id": 1, "execution_id": 1, "version": 1, "narrative_digest": "0" * 64},
        signer=generate_signer(),
    )
    output = CACHE / "work" / ("archive.enc" if encrypted else "archive.tar.zst")
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as sink:
        if encrypted:
            with EncryptingWriter(sink, ring) as out:
                result = build_bundle(spec, cast(BinaryIO, out))
        else:
            result = build_bundle(spec, sink)
    seconds = time.perf_counter() - started
    output.unlink()
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), "archive_bytes": result.size}))


def run_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# --- (c) flat memory --------------------------------------------------------------------------------------------


def child_rss(size_mib: int) -> None:
    from exports.crypto import DecryptingReader, EncryptingWriter

    ring = keyring()
    block = hashlib.shake_256(b"dossier encryption benchmark").digest(MIB)
    path = CACHE / "work" / f"rss-{size_mib}.enc"
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = hashlib.sha256()
    with open(path, "wb") as sink, EncryptingWriter(sink, ring) as out:
        for _ in range(size_mib):
            out.write(block)
            plain.update(block)
    opened = hashlib.sha256()
    with DecryptingReader(open(path, "rb"), ring) as reader:  # noqa: SIM115 - closed by the reader
        while data := reader.read(MIB):
            opened.update(data)
    path.unlink()
    assert opened.digest() == plain.digest()
    print(json.dumps({"rss_mb": peak_rss_mb()}))


# --- (b) download -----------------------------------------------------------------------------------------------


def download_fixture(source: Path):
    from django.utils import timezone

    from exports.crypto import EncryptingWriter
    from exports.encryption import storage_keyring
    from exports.models import ExportArtifact, NarrativeExport
    from exports.services.executions import execution_create
    from exports.services.signing_keys import signing_key_active
    from exports.storage import artifact_name
    from tests.factories import TeamFactory, member_of

    label = f"bench-enc-{time.time_ns()}"
    team = TeamFactory(slug=label)
    user = member_of(team, "scientist", username=label)
    execution = execution_create(team=team, title="encrypted download bench", owner=user)
    export = NarrativeExport.objects.create(execution=execution, version=1, author=user, status="packaged")
    name = artifact_name(
        team_slug=team.slug, execution_id=execution.pk, export_id=export.pk, version=1, compression="zstd"
    )
    target = STORAGE / name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(source, "rb") as plain, open(target, "wb") as sink, EncryptingWriter(sink, storage_keyring()) as out:
        while block := plain.read(MIB):
            digest.update(block)
            out.write(block)
    ExportArtifact.objects.create(
        export=export,
        storage_path=name,
        bag_name=f"dossier-{export.pk}-v1",
        sha256=digest.hexdigest(),
        size=source.stat().st_size,
        compression="zstd",
        signing_key=signing_key_active(),
        payload_oxum="0.0",
        narrative_sha256="0" * 64,
        retain_until=timezone.now() + timedelta(days=1),
    )
    return user, f"/api/experiment-console/sessions/{execution.pk}/exports/narrative/{export.pk}/artifact", target


def time_openssl(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_download(user, url: str, size: int) -> float:
    from django.test import Client

    client = Client()
    client.force_login(user)
    started = time.perf_counter()
    response = client.get(url)
    received = sum(len(chunk) for chunk in response.streaming_content)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and received == size, (response.status_code, received)
    return elapsed


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="scale 0.02, 128 MiB, 2 rounds, RSS at 32/256 MiB")
    parser.add_argument("--child-package", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--encrypted", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_package:
        return child_package(args.child_package, args.encrypted)
    if args.child_rss:
        return child_rss(args.child_rss)
    scale, size_mib, rounds = (0.02, 128, 2) if args.quick else (args.scale, args.size_mib, args.rounds)
    rss_sizes = (32, 256) if args.quick else (100, 1024)

    plain_dir = evidence(scale)
    sealed_dir = encrypted_evidence(plain_dir)
    size = sum(path.stat().st_size for path in plain_dir.rglob("*") if path.is_file())
    print(f"(a) evidence {plain_dir} ({size / MB:.0f} MB), {rounds} rounds, {os.cpu_count()} CPUs", flush=True)
    plain_runs, sealed_runs = [], []
    for number in range(1, rounds + 1):
        plain_runs.append(run_child("--child-package", str(plain_dir)))
        sealed_runs.append(run_child("--child-package", str(sealed_dir), "--encrypted"))
        print(
            f"  round {number}: plaintext {plain_runs[-1]['seconds']:.2f} s, "
            f"encrypted {sealed_runs[-1]['seconds']:.2f} s",
            flush=True,
        )
    plain_s = min(run["seconds"] for run in plain_runs)
    sealed_s = min(run["seconds"] for run in sealed_runs)
    ratio = plain_s / sealed_s
    print(f"  packaging plaintext  {plain_s:7.2f} s  {size / MB / plain_s:7.1f} MB/s")
    print(f"  packaging encrypted  {sealed_s:7.2f} s  {size / MB / sealed_s:7.1f} MB/s")
    print(f"{verdict(ratio >= 0.9)}  (a) encrypted/plaintext packaging throughput {ratio:.2f}  (target >= 0.90)")

    from _django import setup

    setup()
    source = artifact_file(size_mib)
    user, url, stored = download_fixture(source)
    try:
        time_openssl(source)  # warm the page cache
        best_openssl = best_download = float("inf")
        for _ in range(rounds):
            best_openssl = min(best_openssl, time_openssl(source))
            best_download = min(best_download, time_download(user, url, source.stat().st_size))
    finally:
        stored.unlink()
    mb = source.stat().st_size / MB
    ratio = best_openssl / best_download
    print(f"(b) artifact {size_mib} MiB, best of {rounds} rounds")
    print(f"  openssl dgst -sha256           {best_openssl:7.2f} s  {mb / best_openssl:8.0f} MB/s")
    print(f"  decrypting verified download   {best_download:7.2f} s  {mb / best_download:8.0f} MB/s")
    print(f"{verdict(ratio >= 0.4)}  (b) download/openssl throughput {ratio:.2f}  (target >= 0.40)")

    small, large = (run_child("--child-rss", str(size))["rss_mb"] for size in rss_sizes)
    drift = large / small - 1
    print(
        f"{verdict(large < 200 and abs(drift) <= 0.2)}  (c) peak RSS {small:.1f} MB at {rss_sizes[0]} MiB, "
        f"{large:.1f} MB at {rss_sizes[1]} MiB ({drift:+.0%}; target under 200 MB, within 20 %)"
    )


if __name__ == "__main__":
    main()
