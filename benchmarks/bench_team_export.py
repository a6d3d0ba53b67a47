"""Team data export benchmark: ``export_team_data`` against the bundle engine building one bag of the same bytes.

usage: python benchmarks/bench_team_export.py [--quick] [--rounds 3]

The team: 10,000 exports over 1,000 executions (20 timeline events and a notebook entry each) and the packaging
benchmark's evidence set (about 1 GiB, /work/shared/bench/make_evidence.py) uploaded as evidence files through
artifact storage, encrypted at rest as in production. ``--quick``: 1,000 exports and about 128 MiB.

  (a) export_team_data in a child process (Django set up, the team's rows streamed from PostgreSQL into NDJSON,
      every stored file decrypted and sha256-checked while it is archived): seconds, payload throughput, peak RSS
  (b) exports/bundle's build_bundle over the same plaintext files on local disk, in a child process
Targets: (a) >= 0.7 x (b) payload throughput; (a) peak RSS under 200 MB. A report: prints PASS or MISS, exits 0.
Set BENCH_DATABASE_URL to the PostgreSQL database to fill (a new team per run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from _data import CACHE, ROOT, evidence

STORAGE = CACHE / "team-export-storage"
MB = 1e6
TARGET = 0.7

os.environ["ARTIFACT_STORAGE_BACKEND"] = "filesystem"
os.environ["ARTIFACT_ROOT"] = str(STORAGE)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


class Discard:
    def write(self, data) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def child_engine(directory: Path) -> None:
    """Build one bag of the evidence files as they are on disk; print seconds, payload bytes and RSS as JSON."""
    sys.path.insert(0, str(ROOT))
    from exports.bundle import BundleSpec, PayloadFile, build_bundle, generate_signer

    started = time.perf_counter()
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    payload = [PayloadFile.from_bytes("narrative.md", b"# Benchmark\n")]
    payload += [PayloadFile.from_path(f"evidence/{path.relative_to(directory)}", path) for path in files]
    spec = BundleSpec(
        name="engine-baseline",
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        bag_info=[("External-Identifier", "1")],
        payload=payload,
        export_metadata=lambda digests: {"id": 1, "execution_id": 1, "version": 1, "narrative_digest": "0" * 64},
        signer=generate_signer(),
    )
    result = build_bundle(spec, Discard())  # type: ignore[arg-type]
    octets = int(result.payload_oxum.split(".")[0])
    print(json.dumps({"seconds": time.perf_counter() - started, "bytes": octets, "rss_mb": _rss_mb()}))


def child_export(slug: str, username: str, output: Path) -> None:
    """``export_team_data`` through its service; print seconds, payload bytes and RSS as JSON."""
    from _django import setup

    setup()
    from django.contrib.auth import get_user_model

    from exports.services.signing_keys import signing_key_active
    from exports.services.team_data_exports import team_data_export_to_file
    from exports.storage import artifact_storage

    actor = get_user_model().objects.get(username=username)
    # What a long-lived worker has done once already: load the storage backend and create the signing key.
    artifact_storage()
    signing_key_active()
    started = time.perf_counter()
    _, bundle = team_data_export_to_file(team_slug=slug, actor=actor, output=str(output))
    seconds = time.perf_counter() - started
    octets = int(bundle.result.payload_oxum.split(".")[0])
    output.unlink()
    print(json.dumps({"seconds": seconds, "bytes": octets, "rss_mb": _rss_mb(), "counts": dict(bundle.counts)}))


def build_team(directory: Path, exports: int) -> tuple[str, str]:
    """A team with ``exports`` exports (10 per execution) and the evidence files uploaded to storage."""
    from django.core.files import File
    from django.db import transaction

    from exports.models import Evidence, Execution, ExecutionEvent, NarrativeExport
    from exports.storage import artifact_storage
    from tests.factories import TeamFactory, member_of

    slug = f"bench-td-{time.time_ns()}"
    team = TeamFactory(slug=slug, name="Team export benchmark")
    author = member_of(team, "scientist", username=f"{slug}-sci")
    auditor = member_of(team, "auditor", username=f"{slug}-aud")
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    storage = artifact_storage()
    with transaction.atomic():
        executions = Execution.objects.bulk_create(
            Execution(team=team, title=f"Run {n}", owner=author, last_sequence=20) for n in range(exports // 10)
        )
        ExecutionEvent.objects.bulk_create(
            (
                ExecutionEvent(
                    execution=execution, sequence=seq, event_type="measurement.recorded", actor=author,
                    payload={"index": seq, "od600": 0.4 + seq / 1000, "operator": "bench"},
                    occurred_at=execution.created_at, recorded_at=execution.created_at,
                )
                for execution in executions
                for seq in range(1, 21)
            ),
            batch_size=5000,
        )  # fmt: skip
        NarrativeExport.objects.bulk_create(
            (
                NarrativeExport(
                    execution=execution, version=version, author=author, status="rejected",
                    narrative_markdown=f"# Dossier {execution.pk} v{version}\n\n" + "Narrated timeline line.\n" * 60,
                    narrative_digest="0" * 64,
                )
                for execution in executions
                for version in range(1, 11)
            ),
            batch_size=2000,
        )  # fmt: skip
        rows = [
            Evidence(
                execution=execution, kind="notebook_entry", title="Notes", body="No deviations.\n" * 20,
                size=320, sha256="0" * 64, created_by=author,
            )
            for execution in executions
        ]  # fmt: skip
        for index, path in enumerate(files):
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
                handle.seek(0)
                execution = executions[index % len(executions)]
                name = storage.save(f"{slug}/{execution.pk}/evidence/{index:05d}", File(handle))
            rows.append(
                Evidence(
                    execution=execution, kind="file", title=path.name, original_filename=path.name,
                    storage_path=name, size=path.stat().st_size, sha256=digest, created_by=author,
                )
            )  # fmt: skip
        Evidence.objects.bulk_create(rows, batch_size=2000)
    return slug, auditor.username


def run_child(*arguments: str | Path) -> dict:
    output = subprocess.run(  # noqa: S603 - this script
        [sys.executable, __file__, *map(str, arguments)], check=True, capture_output=True, text=True
    ).stdout
    result: dict = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 exports and about 128 MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child-engine", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-export", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_engine:
        return child_engine(args.child_engine)
    if args.child_export:
        slug, username, output = args.child_export
        return child_export(slug, username, Path(output))

    from _django import setup, verdict

    setup()
    exports, scale = (1_000, 0.125) if args.quick else (10_000, 1.0)
    directory = evidence(scale)
    started = time.perf_counter()
    slug, username = build_team(directory, exports)
    print(f"team {slug}: {exports} exports, evidence {directory} (set up in {time.perf_counter() - started:.0f} s)")
    output = CACHE / "work" / f"{slug}.tar.zst"
    output.parent.mkdir(parents=True, exist_ok=True)
    ours, engine = [], []
    for round_number in range(1, args.rounds + 1):
        ours.append(run_child("--child-export", slug, username, output))
        engine.append(run_child("--child-engine", directory))
        print(
            f"  round {round_number}: export_team_data {ours[-1]['seconds']:.2f} s, "
            f"build_bundle {engine[-1]['seconds']:.2f} s",
            flush=True,
        )
    best, base = min(ours, key=lambda r: r["seconds"]), min(engine, key=lambda r: r["seconds"])
    ours_mbps, base_mbps = best["bytes"] / MB / best["seconds"], base["bytes"] / MB / base["seconds"]
    rss = max(run["rss_mb"] for run in ours)
    print(f"counts: {json.dumps(best['counts'])}")
    print(
        f"(a) export_team_data {best['seconds']:7.2f} s  {best['bytes'] / MB:8.0f} MB  {ours_mbps:7.1f} MB/s"
        f"  peak RSS {rss:.1f} MB"
    )
    print(
        f"(b) build_bundle     {base['seconds']:7.2f} s  {base['bytes'] / MB:8.0f} MB  {base_mbps:7.1f} MB/s"
        f"  peak RSS {base['rss_mb']:.1f} MB"
    )
    ratio = ours_mbps / base_mbps
    print(f"{verdict(ratio, TARGET)}  (a)/(b) throughput ratio {ratio:.2f}  (target >= {TARGET})")
    print(f"{verdict(rss, 200, higher_is_better=False)}  (a) peak RSS {rss:.1f} MB  (target under 200 MB)")


if __name__ == "__main__":
    main()
