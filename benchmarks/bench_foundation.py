"""Foundation benchmarks on PostgreSQL.

1. Bulk event ingest through the service layer (events_append, 5,000 events a call as the API allows) versus a raw
   COPY of the same rows into the same table, measured in the same run. Target ratio ≥ 0.25.
2. Audit-chain verification over N rows: rows/s (target ≥ 50,000 rows/s) and the peak memory it adds (streamed).

usage: python benchmarks/bench_foundation.py [--events 100000] [--audit-rows 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

from _django import peak_rss_mb, setup, verdict


def _fresh_execution(label: str):
    from exports.services.executions import execution_create
    from tests.factories import TeamFactory, member_of

    team = TeamFactory(slug=f"bench-{label}-{time.time_ns()}")
    owner = member_of(team, "scientist")
    return execution_create(team=team, title=f"bench {label}", owner=owner), owner


def _events(n: int):
    from exports.services.executions import EventInput

    return [
        EventInput(
            "measurement.recorded", {"well": f"{chr(65 + i % 8)}{1 + i % 12}", "od600": (i % 997) / 1000, "i": i}
        )
        for i in range(n)
    ]


def bench_ingest(total: int, batch: int = 5000) -> dict:
    from django.db import connection

    from exports.services.executions import events_append

    execution, owner = _fresh_execution("ingest")
    events = _events(total)
    started = time.perf_counter()
    for offset in range(0, total, batch):
        events_append(execution=execution, actor=owner, events=events[offset : offset + batch])
    service_s = time.perf_counter() - started

    copy_execution, _ = _fresh_execution("copy")
    rows = [(copy_execution.pk, i + 1, e.event_type, owner.pk, json.dumps(e.payload)) for i, e in enumerate(events)]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(
            "COPY exports_executionevent"
            " (execution_id, sequence, event_type, actor_id, payload, occurred_at, recorded_at) FROM STDIN"
        ) as copy:
            for execution_id, sequence, event_type, actor_id, payload in rows:
                copy.write_row((execution_id, sequence, event_type, actor_id, payload, "now", "now"))
    copy_s = time.perf_counter() - started
    return {
        "events": total,
        "service_events_per_s": total / service_s,
        "copy_events_per_s": total / copy_s,
        "ratio": copy_s / service_s,
    }


def _append_chain_rows(count: int) -> None:
    """Extend the chain quickly (bulk insert with correctly chained hashes) so there is something to verify."""
    from django.db import transaction
    from django.utils import timezone

    from governance.models import AuditChainHead, AuditEvent
    from governance.services.audit import audit_row_hash

    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        sequence, prev = head.last_sequence, head.last_hash
        batch = []
        for n in range(count):
            sequence += 1
            fields = {
                "sequence": sequence,
                "created_at": timezone.now(),
                "actor_id": None,
                "actor_username": "bench",
                "action": "bench.event",
                "object_type": "exports.execution",
                "object_id": str(n),
                "team_id": None,
                "payload": {"n": n, "note": "benchmark row", "values": [n, n * 2]},
                "prev_hash": prev,
            }
            prev = audit_row_hash(**fields)
            batch.append(AuditEvent(**fields, hash=prev))
            if len(batch) == 5000:
                AuditEvent.objects.bulk_create(batch)
                batch = []
        AuditEvent.objects.bulk_create(batch)
        AuditChainHead.objects.filter(pk=1).update(last_sequence=sequence, last_hash=prev)


def bench_audit(rows: int) -> dict:
    from django.db import connection

    from governance.models import AuditEvent
    from governance.services.audit import audit_chain_verify, audit_record

    existing = AuditEvent.objects.count()
    if existing < rows:
        started = time.perf_counter()
        audit_record(action="bench.event", payload={"n": 0})  # through the service, so the head row exists
        _append_chain_rows(rows - existing - 1)
        print(f"  (appended {rows - existing} audit rows in {time.perf_counter() - started:.1f}s)")
    connection.close()
    before = peak_rss_mb()
    started = time.perf_counter()
    report = audit_chain_verify(record=False)
    elapsed = time.perf_counter() - started
    return {
        "rows": report.rows,
        "ok": report.ok,
        "rows_per_s": report.rows / elapsed,
        "peak_rss_added_mb": peak_rss_mb() - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--audit-rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10x smaller")
    args = parser.parse_args()
    if args.quick:
        args.events, args.audit_rows = args.events // 10, args.audit_rows // 10
    setup()

    ingest = bench_ingest(args.events)
    print(f"event ingest, {ingest['events']} events through events_append (5,000 a call):")
    service, copy = ingest["service_events_per_s"], ingest["copy_events_per_s"]
    print(f"  service {service:,.0f} events/s; raw COPY {copy:,.0f} events/s")
    print(f"  ratio service/COPY = {ingest['ratio']:.2f} (target >= 0.25) {verdict(ingest['ratio'], 0.25)}")

    audit = bench_audit(args.audit_rows)
    print(f"audit chain verification over {audit['rows']} rows (intact: {audit['ok']}):")
    print(f"  {audit['rows_per_s']:,.0f} rows/s (target >= 50,000) {verdict(audit['rows_per_s'], 50_000)}")
    print(f"  peak RSS added while verifying: {audit['peak_rss_added_mb']:.1f} MB (streamed in chunks of 5,000)")


if __name__ == "__main__":
    main()
