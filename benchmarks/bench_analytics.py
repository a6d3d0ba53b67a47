"""Governance analytics benchmark on PostgreSQL.

Data: 50,000 approval stages over 5,000 exports (10 stages a ladder, at every point of progress over 30 days),
2,000 preview summaries and 5,000 packaging runs, bulk-inserted once and reused by later runs.

1. Query counts of the analytics computation, the API, the dashboard and /metrics, against the same figures
   for a one-export team: they must not grow with the data.
2. Uncached analytics: median and worst of the computation over the full data set. Target < 500 ms.
3. Cached API responses under load: a gunicorn server on loopback, 4 client threads for 30 s (5 s with --quick)
   each sending GET /api/governance/analytics with a token; p50/p95/p99 and request rate. Target p95 < 30 ms.

usage: python benchmarks/bench_analytics.py [--quick] [--stages 50000] [--duration 30] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from _django import ROOT, setup, verdict

TEAM_SLUG = "bench-analytics"
SMALL_TEAM_SLUG = "bench-analytics-small"
STAGES_PER_LADDER = 10
ROLES = ("reviewer", "qa_approver", "compliance", "pi", "auditor")


def _fixtures(exports: int, previews: int) -> None:
    """Bulk-insert the data set unless it is already there (same size)."""
    from django.db import transaction
    from django.utils import timezone

    from approvals.models import ApprovalLadder, ApprovalStage
    from exports.models import Execution, ExecutionEvent, NarrativeExport, PackagingRun
    from governance.models import Team
    from tests.factories import TeamFactory, member_of

    _small_fixture()
    team = Team.objects.filter(slug=TEAM_SLUG).first()
    if team and NarrativeExport.objects.filter(execution__team=team).count() == exports:
        print(f"fixtures: reusing {exports} exports in team {TEAM_SLUG}")
        return
    if team:
        sys.exit(f"team {TEAM_SLUG} holds a different data set: drop the benchmark database and run again")
    started = time.perf_counter()
    rng = random.Random(42)  # noqa: S311
    now = timezone.now()
    with transaction.atomic():
        team = TeamFactory(slug=TEAM_SLUG, name="Benchmark Lab")
        author = member_of(team, "scientist", username="bench-author")
        member_of(team, "operator", username="bench-operator")
        assignees = [member_of(team, "reviewer", username=f"bench-reviewer-{i}") for i in range(8)]
        executions = Execution.objects.bulk_create(
            [
                Execution(team=team, title=f"Bench run {i}", owner=author, last_sequence=1, started_at=now)
                for i in range(exports)
            ],
            batch_size=5000,
        )
        created = [now - timedelta(hours=rng.uniform(1, 30 * 24)) for _ in executions]
        export_rows = NarrativeExport.objects.bulk_create(
            [
                NarrativeExport(execution=execution, version=1, author=author, narrative_digest="0" * 64)
                for execution in executions
            ],
            batch_size=5000,
        )
        ladders = ApprovalLadder.objects.bulk_create(
            [ApprovalLadder(export=export) for export in export_rows], batch_size=5000
        )
        stages, finalized, export_updates = [], [], []
        for ladder, export, start in zip(ladders, export_rows, created, strict=True):
            at = start
            progress = rng.randint(0, STAGES_PER_LADDER)
            for index in range(STAGES_PER_LADDER):
                sla = rng.choice((4, 8, 24, 48, 72))
                stage = ApprovalStage(
                    ladder=ladder,
                    index=index,
                    name=f"Stage {index + 1}",
                    required_role=ROLES[index % len(ROLES)],
                    sla_hours=sla,
                    assignee=rng.choice(assignees) if rng.random() < 0.3 else None,
                )
                took = timedelta(hours=sla * rng.uniform(0.1, 1.6))
                if index < progress and at + took < now:
                    stage.status, stage.started_at, stage.due_at = "approved", at, at + timedelta(hours=sla)
                    stage.completed_at = at = at + took
                elif index == progress or (index < progress and at + took >= now):
                    stage.status, stage.started_at, stage.due_at = "in_progress", at, at + timedelta(hours=sla)
                    progress = index
                else:
                    stage.status = "pending"
                stages.append(stage)
            if progress >= STAGES_PER_LADDER:
                ladder.status, ladder.finalized_at = "approved", at
                finalized.append(ladder)
                export.status, export.packaged_at, export.queued_at = "packaged", at, at
            else:
                export.packaging_queue_state = {"status": "awaiting_approval"}
            export.created_at = start
            export_updates.append(export)
        ApprovalStage.objects.bulk_create(stages, batch_size=10000)
        ApprovalLadder.objects.bulk_update(finalized, ["status", "finalized_at"], batch_size=5000)
        for ladder, start in zip(ladders, created, strict=True):
            ladder.created_at = start
        ApprovalLadder.objects.bulk_update(ladders, ["created_at"], batch_size=5000)
        NarrativeExport.objects.bulk_update(
            export_updates,
            ["status", "packaged_at", "queued_at", "packaging_queue_state", "created_at"],
            batch_size=5000,
        )
        ExecutionEvent.objects.bulk_create(
            [
                ExecutionEvent(
                    execution=execution,
                    sequence=1,
                    event_type="governance.preview.summary",
                    payload={
                        "stages": [
                            {"required_role": ROLES[i % len(ROLES)], "sla_hours": rng.choice((8, 24, 48))}
                            for i in range(STAGES_PER_LADDER)
                        ]
                    },
                    occurred_at=start - timedelta(minutes=30),
                    recorded_at=start - timedelta(minutes=30),
                )
                for execution, start in list(zip(executions, created, strict=True))[:previews]
            ],
            batch_size=5000,
        )
        PackagingRun.objects.bulk_create(
            [
                PackagingRun(
                    export=export,
                    attempt=1,
                    status="succeeded" if rng.random() < 0.85 else "failed",
                    started_at=now - timedelta(hours=1),
                    finished_at=now,
                    duration_ms=rng.randint(200, 90_000),
                    bytes=rng.randint(10_000, 50_000_000),
                    error_code="" if rng.random() < 0.85 else rng.choice(("storage_unavailable", "internal_error")),
                )
                for export in export_rows
            ],
            batch_size=5000,
        )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"fixtures: {len(stages)} stages over {len(export_rows)} exports, {previews} previews, "
        f"{len(export_rows)} packaging runs inserted in {time.perf_counter() - started:.1f}s"
    )


def _small_fixture() -> None:
    """A one-export team of the same shape (an overdue, assigned stage and a preview summary): the reference for
    query counts."""
    from django.db import transaction
    from django.utils import timezone

    from approvals.models import ApprovalLadder, ApprovalStage
    from exports.models import Execution, ExecutionEvent, NarrativeExport
    from governance.models import Team
    from tests.factories import TeamFactory, member_of

    if Team.objects.filter(slug=SMALL_TEAM_SLUG).exists():
        return
    now = timezone.now()
    with transaction.atomic():
        small = TeamFactory(slug=SMALL_TEAM_SLUG, name="Benchmark small lab")
        member_of(small, "operator", username="bench-small-operator")
        author = member_of(small, "scientist", username="bench-small-author")
        reviewer = member_of(small, "reviewer", username="bench-small-reviewer")
        execution = Execution.objects.create(team=small, title="Small run", owner=author, last_sequence=1)
        export = NarrativeExport.objects.create(execution=execution, version=1, author=author)
        ladder = ApprovalLadder.objects.create(export=export)
        ApprovalStage.objects.create(
            ladder=ladder,
            index=0,
            name="Review",
            required_role="reviewer",
            sla_hours=24,
            status="in_progress",
            assignee=reviewer,
            started_at=now - timedelta(hours=30),
            due_at=now - timedelta(hours=6),
        )
        ExecutionEvent.objects.create(
            execution=execution, sequence=1, event_type="governance.preview.summary",
            payload={"stages": [{"required_role": "reviewer", "sla_hours": 24}]},
            occurred_at=now - timedelta(hours=31), recorded_at=now - timedelta(hours=31),
        )  # fmt: skip


def _queries(callable_) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        callable_()
    return len(captured)


def _client_for(username: str):
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def bench_query_counts() -> dict:
    from django.core.cache import cache

    from analytics.governance import analytics_scope, governance_analytics

    results = {}
    for label, username in (("large", "bench-operator"), ("small", "bench-small-operator")):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(username=username)
        scope = analytics_scope(user=user)
        client = _client_for(username)
        cache.clear()
        results[label] = {
            "compute": _queries(lambda scope=scope: governance_analytics(scope)),
            "api_uncached": _queries(lambda client=client: client.get("/api/governance/analytics")),
            "api_cached": _queries(lambda client=client: client.get("/api/governance/analytics")),
            "dashboard": _queries(lambda client=client: client.get("/governance/dashboard")),
            "panels": _queries(lambda client=client: client.get("/governance/dashboard/panels")),
        }
    staff = _client_for("bench-operator")
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="bench-operator").update(is_staff=True)
    results["large"]["metrics"] = _queries(lambda: staff.get("/metrics"))
    results["small"]["metrics"] = results["large"]["metrics"]
    fixed = all(results["large"][key] == results["small"][key] for key in results["small"])
    for key in results["small"]:
        print(f"queries {key:>13}: large data {results['large'][key]:>3}   one export {results['small'][key]:>3}")
    print(f"query counts independent of data size: {'PASS' if fixed else 'MISS'}")
    return {"fixed": fixed, **results}


def bench_uncached(repeat: int) -> dict:
    from django.contrib.auth import get_user_model

    from analytics.governance import analytics_scope, governance_analytics

    user = get_user_model().objects.get(username="bench-operator")
    scope = analytics_scope(user=user)
    governance_analytics(scope)  # warm connections and plans
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        governance_analytics(scope)
        timings.append((time.perf_counter() - started) * 1000)
    client = _client_for("bench-operator")
    from django.core.cache import cache

    cache.clear()
    started = time.perf_counter()
    response = client.get("/api/governance/analytics")
    api_ms = (time.perf_counter() - started) * 1000
    assert response["X-Cache"] == "MISS", response["X-Cache"]
    dashboard_started = time.perf_counter()
    client.get("/governance/dashboard")
    dashboard_ms = (time.perf_counter() - dashboard_started) * 1000
    median, worst = statistics.median(timings), max(timings)
    print(
        f"uncached analytics over the full data set: median {median:.0f} ms, worst "
        f"{worst:.0f} ms (target median < 500 ms: {verdict(median, 500, higher_is_better=False)}); "
        f"API miss {api_ms:.0f} ms; dashboard (cache warm) {dashboard_ms:.0f} ms"
    )
    return {"median_ms": median, "worst_ms": worst, "api_miss_ms": api_ms, "dashboard_ms": dashboard_ms}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "config.settings"}
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--worker-class", "gthread", "--threads", "4", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    sys.exit("gunicorn did not start")


def bench_cached_load(duration: float, clients: int) -> dict:
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    token = AuthToken.objects.create(user=get_user_model().objects.get(username="bench-operator"))[1]
    port = _free_port()
    server = _start_server(port)
    headers = {"Authorization": f"Token {token}", "Host": "127.0.0.1"}
    latencies: list[list[float]] = [[] for _ in range(clients)]
    misses = [0] * clients
    errors = [0] * clients
    try:
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(4):  # each worker process warms its connections; the cache entry is shared via Redis
            warm.request("GET", "/api/governance/analytics", headers=headers)
            warm.getresponse().read()
        warm.close()
        stop = time.monotonic() + duration

        def client_loop(slot: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    connection.request("GET", "/api/governance/analytics", headers=headers)
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    errors[slot] += 1
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    continue
                latencies[slot].append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    errors[slot] += 1
                elif response.getheader("X-Cache") != "HIT":
                    misses[slot] += 1
            connection.close()

        threads = [threading.Thread(target=client_loop, args=(slot,)) for slot in range(clients)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
    finally:
        server.terminate()
        server.wait(timeout=15)
    samples = sorted(value for slot in latencies for value in slot)
    if not samples:
        sys.exit("no request succeeded")

    def percentile(fraction: float) -> float:
        return samples[min(len(samples) - 1, int(fraction * len(samples)))]

    p95 = percentile(0.95)
    rate = len(samples) / elapsed
    print(
        f"cached API, {clients} clients for {elapsed:.0f}s: {len(samples)} requests, {rate:.0f} req/s, "
        f"p50 {percentile(0.5):.1f} ms, p95 {p95:.1f} ms, p99 {percentile(0.99):.1f} ms, "
        f"misses {sum(misses)}, errors {sum(errors)} (target p95 < 30 ms: {verdict(p95, 30, higher_is_better=False)})"
    )
    return {"requests": len(samples), "rate": rate, "p95_ms": p95, "misses": sum(misses), "errors": sum(errors)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="5,000 stages and a 5 s load run")
    parser.add_argument("--stages", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    stages = args.stages or (5_000 if args.quick else 50_000)
    duration = args.duration or (5 if args.quick else 30)
    default_url = "postgres://postgres@127.0.0.1:5432/dossier_bench_analytics" + ("_quick" if args.quick else "")
    setup(os.environ.get("BENCH_DATABASE_URL", default_url))
    exports = stages // STAGES_PER_LADDER
    _fixtures(exports, previews=min(2000, exports))
    counts = bench_query_counts()
    uncached = bench_uncached(repeat=5)
    load = bench_cached_load(duration, args.clients)
    ok = counts["fixed"] and uncached["median_ms"] < 500 and load["p95_ms"] < 30 and not load["errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
