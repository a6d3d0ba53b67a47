"""Fixity check benchmark (docs/storage-tiers-and-fixity.md): ``verify_artifacts`` over stored objects against
``openssl dgst -sha256`` over the same files, in the same run.

usage: python benchmarks/bench_fixity.py [--size-mib 1024] [--files 16] [--rounds 3] [--quick]

The objects are evidence files in encrypting filesystem storage (each a copy of a deterministic incompressible
file, encrypted as it is stored, ``stored_sha256`` recorded on the way). Rounds are interleaved and the best time of
each side kept, so both read from the same page cache state.

  throughput of ``manage.py verify_artifacts`` (every object, results recorded) / throughput of
  ``openssl dgst -sha256`` over the stored files                                      target: >= 0.8

``--quick``: 128 MiB in 8 files, 2 rounds. Uses its own PostgreSQL database (``BENCH_FIXITY_DATABASE_URL``,
default ``dossier_bench_fixity``). A report: always exits 0.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _data import CACHE, MIB, ROOT, artifact_file

STORAGE = CACHE / "fixity-storage"
KEYRING = CACHE / "fixity-keyring.json"
DATABASE_URL = os.environ.get("BENCH_FIXITY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dossier_bench_fixity")
TARGET = 0.8

os.environ["ARTIFACT_STORAGE_BACKEND"] = "filesystem"
os.environ["ARTIFACT_ROOT"] = str(STORAGE)
os.environ["DOSSIER_KEYRING"] = str(KEYRING)
os.environ["DOSSIER_PROBLEMS_DIR"] = str(CACHE / "fixity-problems")
sys.path.insert(0, str(ROOT))

from _django import setup, verdict  # noqa: E402


def keyring_ready() -> None:
    from exports.crypto import generate_local_document, keyring_document_write

    if not KEYRING.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        keyring_document_write(str(KEYRING), generate_local_document())


def stored_objects(source: Path, count: int) -> list[Path]:
    """``count`` evidence files stored from ``source`` through the product's write path; their stored paths."""
    from django.core.files.storage import storages

    from exports.models import Evidence
    from exports.services.executions import execution_create
    from exports.storage import stored_object_save
    from tests.factories import TeamFactory, member_of

    Evidence.objects.filter(storage_path__startswith="bench-fixity/").delete()
    shutil.rmtree(STORAGE, ignore_errors=True)
    label = f"bench-fixity-{time.time_ns()}"
    team = TeamFactory(slug=label)
    user = member_of(team, "scientist", username=label)
    execution = execution_create(team=team, title="fixity bench", owner=user)
    sha256 = openssl_digests([source])[0]
    paths = []
    for index in range(count):
        with open(source, "rb") as handle:
            stored = stored_object_save(f"bench-fixity/{label}/{index}", handle)
        Evidence.objects.create(
            execution=execution,
            kind="file",
            title=f"object {index}",
            storage_path=stored.name,
            stored_sha256=stored.stored_sha256,
            size=source.stat().st_size,
            sha256=sha256,
            created_by=user,
        )
        paths.append(Path(storages["artifacts"].path(stored.name)))
    return paths


def openssl_digests(paths: list[Path]) -> list[str]:
    result = subprocess.run(  # noqa: S603 - fixed arguments
        ["openssl", "dgst", "-sha256", "-r", *map(str, paths)], check=True, capture_output=True, text=True
    )
    return [line.split()[0] for line in result.stdout.splitlines()]


def time_openssl(paths: list[Path]) -> float:
    started = time.perf_counter()
    openssl_digests(paths)
    return time.perf_counter() - started


def time_verify(expected_objects: int) -> float:
    from django.core.management import call_command

    out = io.StringIO()
    started = time.perf_counter()
    call_command("verify_artifacts", stdout=out, stderr=io.StringIO())
    elapsed = time.perf_counter() - started
    assert f"intact {expected_objects}" in out.getvalue(), out.getvalue()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="128 MiB in 8 files, 2 rounds")
    args = parser.parse_args()
    size_mib, files, rounds = (128, 8, 2) if args.quick else (args.size_mib, args.files, args.rounds)
    setup(DATABASE_URL)
    keyring_ready()
    source = artifact_file(max(size_mib // files, 1))
    paths = stored_objects(source, files)
    total = sum(path.stat().st_size for path in paths)
    openssl_times, verify_times = [], []
    for _ in range(rounds):
        openssl_times.append(time_openssl(paths))
        verify_times.append(time_verify(files))
    best_openssl, best_verify = min(openssl_times), min(verify_times)
    ratio = best_openssl / best_verify
    print(f"stored objects: {files} files, {total / MIB:.0f} MiB (encrypted at rest)")
    print(f"openssl dgst -sha256: best {best_openssl:.2f}s ({total / MIB / best_openssl:.0f} MiB/s)")
    print(f"verify_artifacts:     best {best_verify:.2f}s ({total / MIB / best_verify:.0f} MiB/s)")
    print(f"ratio verify_artifacts / openssl throughput: {ratio:.2f} (target >= {TARGET}) {verdict(ratio, TARGET)}")


if __name__ == "__main__":
    main()
