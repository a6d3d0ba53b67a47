"""Retention enforcement on PostgreSQL: ``enforce_retention`` over many exports, against a raw ``DELETE … RETURNING``.

Seeds N packaged exports (bulk inserts: executions, exports, artifacts) of which a tenth are past ``retain_until``,
with a small file in artifact storage for each due one, and a legal hold on a hundredth of the due ones. Then, in
the same run:

1. the baseline: ``DELETE FROM exports_exportartifact … RETURNING`` of exactly the rows the run will purge (due and
   not held), inside a transaction that is rolled back;
2. ``retention_enforce``: the selection, the deletes in storage, tombstones, the ``expired`` transitions and their
   timeline and audit rows, batch by batch.

It prints both times, the ratio run/DELETE, and the most queries any batch took (a fixed number, not one per row).
Runs on its own database, ``<BENCH_DATABASE_URL>_retention``, emptied of exports and audit rows before seeding.

usage: python benchmarks/bench_retention.py [--exports 100000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta

from _django import DEFAULT_URL, setup

VERSIONS = 100  # export versions per execution
HELD_SHARE = 100  # one due export in this many is held
CHUNK = 5000


def _reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE exports_retentiontombstone, exports_legalhold, exports_exportartifact, "
            "execution_narrative_exports, exports_executionevent, exports_execution, governance_auditevent, "
            "governance_auditchainhead CASCADE"
        )


def _seed(total: int, storage_root: str) -> list[int]:
    """``total`` packaged exports, a tenth due; returns the ids of the due exports that are held."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages
    from django.db import connection
    from django.utils import timezone

    from exports.models import Execution, ExportArtifact, LegalHold, NarrativeExport, SigningKey
    from tests.factories import TeamFactory, member_of

    started = time.perf_counter()
    _reset()
    team = TeamFactory(slug=f"bench-retention-{int(time.time())}")
    author = member_of(team, "compliance", username=f"bench-retention-{team.pk}")
    key, _ = SigningKey.objects.get_or_create(
        key_id="bench-retention",
        defaults={"public_key_pem": "-", "private_key_ciphertext": b"-", "private_key_nonce": b"-", "encryption": "-"},
    )
    now = timezone.now()
    executions = Execution.objects.bulk_create(
        [Execution(team=team, title=f"Run {n}", owner=author) for n in range(max(1, total // VERSIONS))],
        batch_size=CHUNK,
    )
    storage = storages["artifacts"]
    due_ids: list[int] = []
    for start in range(0, total, CHUNK):
        numbers = range(start, min(total, start + CHUNK))
        exports = NarrativeExport.objects.bulk_create(
            [
                NarrativeExport(
                    execution=executions[n // VERSIONS],
                    version=n % VERSIONS + 1,
                    status="packaged",
                    author=author,
                    retain_until=now + timedelta(days=-1 if n % 10 == 0 else 365),
                )
                for n in numbers
            ]
        )
        ExportArtifact.objects.bulk_create(
            [
                ExportArtifact(
                    export=export,
                    storage_path=f"bench/{export.pk}.tar.zst",
                    bag_name=f"dossier-{export.pk}",
                    sha256="0" * 64,
                    size=1024,
                    compression="zstd",
                    signing_key=key,
                    payload_oxum="1024.1",
                    narrative_sha256="0" * 64,
                    retain_until=export.retain_until,
                )
                for export in exports
            ]
        )
        for export in exports:
            if export.retain_until < now:
                due_ids.append(export.pk)
                storage.save(f"bench/{export.pk}.tar.zst", ContentFile(b"x" * 1024))
    held = due_ids[::HELD_SHARE]
    LegalHold.objects.bulk_create(
        [LegalHold(team=team, scope="export", export_id=pk, reason="Bench hold", placed_by=author) for pk in held]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh statistics, as autovacuum keeps them on a live database
    print(
        f"  (seeded {total:,} exports, {len(due_ids):,} due, {len(held)} held, in {time.perf_counter() - started:.1f}s)"
    )
    return held


def _delete_returning_seconds(now) -> tuple[float, int]:
    """The baseline: delete the same rows the run purges, returning what a tombstone keeps; rolled back."""
    from django.db import connection, transaction

    sql = (
        "DELETE FROM exports_exportartifact a WHERE a.expired_at IS NULL AND a.retain_until <= %s AND NOT EXISTS "
        "(SELECT 1 FROM exports_legalhold h WHERE h.released_at IS NULL AND h.export_id = a.export_id) "
        "RETURNING a.id, a.export_id, a.storage_path, a.sha256, a.size"
    )
    with transaction.atomic():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql, [now])
            rows = len(cursor.fetchall())
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exports", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10x smaller")
    args = parser.parse_args()
    if args.quick:
        args.exports //= 10
    base_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    setup(os.environ.get("BENCH_RETENTION_DATABASE_URL", base_url + "_retention"))
    from django.conf import settings
    from django.utils import timezone

    from exports.services.retention import retention_enforce

    with tempfile.TemporaryDirectory() as root:
        settings.STORAGES = {
            **settings.STORAGES,
            "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": root}},
        }
        held = _seed(args.exports, root)
        now = timezone.now()
        delete_s, deleted = _delete_returning_seconds(now)
        started = time.perf_counter()
        report = retention_enforce(batch_size=1000, now=now)
        run_s = time.perf_counter() - started
        left = sum(len(files) for _, _, files in os.walk(root))
    purged = report.categories["artifact"]
    print(f"enforce_retention over {args.exports:,} exports ({purged.due:,} due, {purged.held:,} held):")
    print(f"  purged {purged.purged:,} artifacts in {report.batches} batches of at most 1,000 in {run_s:.2f}s")
    print(f"  raw DELETE … RETURNING of the same {deleted:,} rows: {delete_s:.3f}s")
    print(f"  ratio run/DELETE = {run_s / delete_s:.1f}x (the run also deletes files, writes tombstones, timeline")
    print("  and audit-chain rows for each purge)")
    print(f"  queries: {report.queries:,} in all, at most {report.max_batch_queries} per batch (fixed: not per row)")
    print(f"  files left in storage: {left:,} (the held ones: {len(held)})")
    if purged.purged != deleted or left != len(held):
        raise SystemExit("the run did not purge exactly the rows the DELETE removed")


if __name__ == "__main__":
    main()
