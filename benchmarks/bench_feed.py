"""Streaming exports on PostgreSQL: the governance event feed and the auditors' CSV, against COPY … TO STDOUT.

1. The feed (``governance_feed_run``: keyset batches of 5,000, orjson records, the file cursor store saved after
   each batch) sending N events to a sink that writes to /dev/null, versus ``COPY (SELECT …) TO STDOUT`` of the same
   audit rows read to the end, measured in the same run. Target ratio feed/COPY ≥ 0.3, with flat memory.
2. The audit-trail CSV export (``csv_chunks``, the body of ``GET /api/governance/audit-events?format=csv``: the
   database writes the CSV of the export's SELECT, with formula neutralization) over the same rows versus a plain
   ``COPY (SELECT …) TO STDOUT WITH CSV`` of the table. Target ratio ≥ 0.3.

The rows are seeded straight into the audit table (with well-formed but not chained hashes), so this runs on its own
database, ``<BENCH_DATABASE_URL>_feed`` (default ``dossier_bench_feed``), never the one whose chain other
benchmarks verify.

usage: python benchmarks/bench_feed.py [--events 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _django import DEFAULT_URL, peak_rss_mb, setup, verdict

TARGET = 0.3
BATCH = 5000


def _seed(total: int) -> None:
    """At least ``total`` feed-type audit rows on a few real exports (so the feed's joins find them)."""
    from django.db import connection
    from django.utils import timezone

    from governance.feed_registry import feed_event_types
    from governance.models import AuditChainHead, AuditEvent, Team

    types = sorted(feed_event_types())
    have = AuditEvent.objects.filter(action__in=types).count()
    if have >= total:
        return
    started = time.perf_counter()
    if not Team.objects.filter(slug="bench-feed").exists():
        from tests.analytics.factories import new_export
        from tests.approvals.factories import crew_for, published_snapshot
        from tests.factories import TeamFactory

        team = TeamFactory(slug="bench-feed")
        crew = crew_for(team)
        snapshot = published_snapshot()
        for n in range(20):
            new_export(team=team, author=crew.author, snapshot=snapshot, title=f"Bench {n}")
    team = Team.objects.get(slug="bench-feed")
    exports = list(
        AuditEvent.objects.filter(object_type="exports.narrativeexport")
        .values_list("object_id", flat=True)
        .distinct()[:20]
    )
    base = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    missing = total - have
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO governance_auditevent (sequence, created_at, actor_id, actor_username, action, object_type,
                object_id, team_id, payload, prev_hash, hash)
            SELECT %(base)s + i, %(now)s - make_interval(secs => (%(n)s - i) / 1000.0), NULL, 'bench-approver',
                (%(types)s::text[])[1 + i %% %(ntypes)s], 'exports.narrativeexport',
                (%(exports)s::text[])[1 + i %% %(nexports)s], %(team)s,
                jsonb_build_object('export_id', (%(exports)s::text[])[1 + i %% %(nexports)s]::bigint, 'version', 1,
                    'sequence', i, 'stage_id', i %% 5000, 'stage_index', i %% 3, 'stage_name', 'Stage ' || (i %% 3),
                    'required_role', 'qa_approver', 'iteration', 1, 'due_at', '2026-12-01T12:00:00+00:00'),
                encode(sha256(convert_to('p' || (%(base)s + i), 'UTF8')), 'hex'),
                encode(sha256(convert_to('h' || (%(base)s + i), 'UTF8')), 'hex')
            FROM generate_series(1, %(n)s) AS i
            """,
            {
                "base": base,
                "now": timezone.now(),
                "n": missing,
                "types": types,
                "ntypes": len(types),
                "exports": exports,
                "nexports": len(exports),
                "team": team.pk,
            },
        )
        cursor.execute("ANALYZE governance_auditevent")
    AuditChainHead.objects.update_or_create(pk=1, defaults={"last_sequence": base + missing})
    print(f"  (seeded {missing:,} audit rows in {time.perf_counter() - started:.1f}s)")


def _copy_seconds(select: str, params: list, options: str = "") -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY ({select}) TO STDOUT {options}", params) as copy:
        for _ in copy:
            pass
    return time.perf_counter() - started


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (Linux) so the figure after a run is that run's own peak; returns the RSS
    now, in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return peak_rss_mb()
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_added(before: float) -> float:
    try:
        return _status_mb("VmHWM") - before
    except OSError:
        return peak_rss_mb() - before


class NullSink:
    name = "null"

    def __init__(self) -> None:
        self.out = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the benchmark

    def send(self, batch) -> None:
        self.out.write(b"".join(record.data + b"\n" for record in batch))


def bench_feed(total: int) -> dict:
    from exports.feed.cursors import FileCursorStore
    from exports.feed.service import governance_feed_run
    from governance.feed_registry import feed_event_types

    types = sorted(feed_event_types())
    select = "SELECT * FROM governance_auditevent WHERE action = ANY(%s) AND sequence > 0 ORDER BY sequence LIMIT %s"
    copy_s = _copy_seconds(select, [types, total])
    before = _reset_peak_rss()
    with tempfile.TemporaryDirectory() as directory:
        store = FileCursorStore(os.path.join(directory, "cursor.json"))
        started = time.perf_counter()
        result = governance_feed_run(sink=NullSink(), store=store, limit=total, batch_size=BATCH)
        feed_s = time.perf_counter() - started
    return {
        "events": result.exported,
        "feed_per_s": result.exported / feed_s,
        "copy_per_s": total / copy_s,
        "ratio": copy_s / feed_s,
        "rss_added_mb": _peak_added(before),
    }


def bench_audit_csv(total: int) -> dict:
    from governance.models import AuditEvent
    from governance.selectors.audit_trail import AuditTrailFilters, audit_events_filtered, csv_chunks

    last = AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True)[total - 1]
    select = (
        "SELECT ae.sequence, ae.created_at, ae.actor_id, ae.actor_username, ae.action, ae.object_type, ae.object_id, "
        "ae.team_id, ae.payload, ae.prev_hash, ae.hash, t.slug FROM governance_auditevent ae "
        "LEFT JOIN governance_team t ON t.id = ae.team_id WHERE ae.sequence <= %s ORDER BY ae.sequence"
    )
    copy_s = _copy_seconds(select, [last], "WITH (FORMAT csv, HEADER true)")
    before = _reset_peak_rss()
    qs = audit_events_filtered(filters=AuditTrailFilters())
    rows = 0
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        for chunk in csv_chunks(qs, until_sequence=last):
            sink.write(chunk)
            rows += chunk.count(b"\n")
    csv_s = time.perf_counter() - started
    return {
        "rows": rows - 1,
        "csv_per_s": (rows - 1) / csv_s,
        "copy_per_s": total / copy_s,
        "ratio": copy_s / csv_s,
        "rss_added_mb": _peak_added(before),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20x smaller")
    args = parser.parse_args()
    if args.quick:
        args.events //= 20
    base_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    setup(os.environ.get("BENCH_FEED_DATABASE_URL", base_url + "_feed"))
    _seed(args.events)

    feed = bench_feed(args.events)
    print(f"governance event feed, {feed['events']:,} events in batches of {BATCH:,} (file cursor store):")
    print(f"  feed {feed['feed_per_s']:,.0f} events/s; COPY TO STDOUT {feed['copy_per_s']:,.0f} rows/s")
    print(f"  ratio feed/COPY = {feed['ratio']:.2f} (target >= {TARGET}) {verdict(feed['ratio'], TARGET)}")
    print(f"  peak RSS added: {feed['rss_added_mb']:.1f} MB (one batch sent while the next is read)")

    audit = bench_audit_csv(args.events)
    print(f"audit trail CSV export, {audit['rows']:,} rows (COPY … TO STDOUT WITH CSV of the export's SELECT):")
    print(f"  export {audit['csv_per_s']:,.0f} rows/s; COPY TO STDOUT CSV {audit['copy_per_s']:,.0f} rows/s")
    print(f"  ratio export/COPY = {audit['ratio']:.2f} (target >= {TARGET}) {verdict(audit['ratio'], TARGET)}")
    print(f"  peak RSS added: {audit['rss_added_mb']:.1f} MB")


if __name__ == "__main__":
    main()
