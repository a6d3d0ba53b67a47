"""Outbox benchmarks on PostgreSQL and Redis (docs/architecture.md, "The outbox").

1. What the outbox adds to a small committed write: a coaching note (one timeline event and the team's analytics
   invalidation) through the service with its invalidation written to the outbox and relayed after commit, versus
   the same write whose invalidation is sent straight from an on-commit callback (what the code did before the
   outbox), measured in the same run. Printed as a ratio; target ≤ 2.0 (the outbox adds one
   insert to the change and two short bookkeeping transactions after it).
2. Relay throughput: N pending cache invalidations delivered by ``outbox_relay`` versus the same N cache deletes
   issued directly, in the same run. Printed as messages/s and a ratio; target ≥ 0.1 of the direct rate.

usage: python benchmarks/bench_outbox.py [--notes 300] [--messages 5000] [--quick]
(BENCH_DATABASE_URL: a PostgreSQL database of its own; REDIS_URL: a Redis for the cache.)
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from unittest import mock

from _django import setup, verdict


def _execution():
    from exports.services.executions import execution_create
    from tests.factories import TeamFactory, member_of

    team = TeamFactory(slug=f"bench-outbox-{time.time_ns()}")
    owner = member_of(team, "scientist")
    coach = member_of(team, "reviewer")
    return execution_create(team=team, title="bench outbox", owner=owner), coach


def _notes(count: int, *, direct: bool) -> float:
    from django.db import transaction

    from exports.services.executions import coaching_note_record
    from governance.signals import team_state_changed

    def straight(*, team_id, execution_id, reason):
        transaction.on_commit(
            lambda: team_state_changed.send(sender=None, team_id=team_id, execution_id=execution_id, reason=reason)
        )

    execution, coach = _execution()
    patch = mock.patch("exports.services.executions.team_state_announce", straight) if direct else nullcontext()
    with patch:
        started = time.perf_counter()
        for n in range(count):
            coaching_note_record(execution=execution, actor=coach, body=f"note {n}")
        return time.perf_counter() - started


def bench_write(count: int) -> dict:
    _notes(20, direct=False)  # warm up both paths
    _notes(20, direct=True)
    direct = _notes(count, direct=True)
    outbox = _notes(count, direct=False)
    ratio = outbox / direct
    return {
        "direct_ms_per_note": round(direct / count * 1000, 2),
        "outbox_ms_per_note": round(outbox / count * 1000, 2),
        "ratio": round(ratio, 2),
        "verdict": verdict(ratio, 2.0, higher_is_better=False),
    }


def bench_relay(count: int) -> dict:
    from django.core.cache import cache

    from governance.models import OutboxMessage
    from governance.selectors.preferences import viewer_time_zone_cache_key
    from governance.services.outbox import HANDLER_TIME_ZONES_FORGET, outbox_relay

    OutboxMessage.objects.filter(delivered_at__isnull=True).delete()
    OutboxMessage.objects.bulk_create(
        OutboxMessage(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": [n]}) for n in range(count)
    )
    started = time.perf_counter()
    report = outbox_relay(limit=count)
    relay = time.perf_counter() - started
    assert report.delivered == count, report

    started = time.perf_counter()
    for n in range(count):
        cache.delete(viewer_time_zone_cache_key(n))
    direct = time.perf_counter() - started
    ratio = (count / relay) / (count / direct)
    return {
        "relay_messages_per_s": round(count / relay),
        "direct_deletes_per_s": round(count / direct),
        "ratio": round(ratio, 3),
        "verdict": verdict(ratio, 0.1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    notes, messages = (50, 500) if args.quick else (args.notes, args.messages)
    setup()
    print("committed write (coaching note), outbox vs direct on-commit invalidation:", bench_write(notes))
    print("relay throughput, outbox vs direct cache deletes:", bench_relay(messages))


if __name__ == "__main__":
    main()
