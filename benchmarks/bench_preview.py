"""Ladder preview latency (docs/templates-and-baselines.md, "Ladder projection"): ``GET /api/experiments/{id}/preview``
of an execution with 10,000 events (target under 1 s), printed with its ratio to rendering the same narrative alone (the
renderer on inputs already built in memory) and to building plus rendering them (what the preview shares with export
creation).

Run from the repository root: ``python benchmarks/bench_preview.py [--quick]`` (PostgreSQL database from
``PREVIEW_BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/dossier_bench_preview``; its
executions are truncated). ``--quick`` takes the best of 2 runs instead of 5. Always exits 0: it reports.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from _django import setup, verdict

DATABASE_URL = os.environ.get("PREVIEW_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dossier_bench_preview")
EVENT_COUNT = 10_000
TARGET_SECONDS = 1.0


def best(fn: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - began)
    return min(timings)


def seed():
    from django.db import connection, transaction

    from exports.services.evidence import notebook_entry_create
    from exports.services.executions import EventInput, execution_create, timeline_append
    from governance.models import Team
    from tests.approvals.factories import crew_for, export_with_ladder, published_snapshot

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE approvals_approvalhistory, approvals_approvalsignature, approvals_approvalstage, "
            "approvals_approvalladder, execution_narrative_exports, exports_evidence, exports_executionevent, "
            "exports_execution, governance_auditevent, governance_auditchainhead, governance_membership, "
            "governance_template_audit_logs CASCADE"
        )
    team, _ = Team.objects.get_or_create(slug="bench-preview", defaults={"name": "Bench preview"})
    crew = crew_for(team)
    snapshot = published_snapshot(key=f"bench-preview-{time.monotonic_ns()}")
    from governance.services.templates import template_assign

    template_assign(template=snapshot.template, actor=None, team=team)
    for index in range(20):  # open load for every role
        other = execution_create(team=team, title=f"Queue {index}", owner=crew.author)
        export_with_ladder(execution=other, author=crew.author, snapshot=snapshot)
    execution = execution_create(team=team, title="Long run", owner=crew.author, protocol_template_key="bench")
    with transaction.atomic():
        timeline_append(
            execution=execution,
            actor=crew.author,
            events=[
                EventInput("sample.measured", {"step": i % 40, "field": "od600", "value": i / 7, "note": "ok"})
                for i in range(EVENT_COUNT)
            ],
        )
    for index in range(5):
        notebook_entry_create(execution=execution, actor=crew.author, title=f"Note {index}", body="**Observed** ok")
    execution.refresh_from_db()
    return execution, crew.author


def main() -> None:
    runs = 2 if "--quick" in sys.argv else 5
    setup(DATABASE_URL)
    from django.utils import timezone
    from rest_framework.test import APIClient

    from exports import narratives as n
    from exports.services import rendering
    from exports.services.narrative_exports import evidence_selection

    execution, author = seed()
    client = APIClient()
    client.force_authenticate(author)

    def preview() -> None:
        response = client.get(f"/api/experiments/{execution.pk}/preview")
        assert response.status_code == 200, response.content

    selection = evidence_selection(execution=execution, refs=None)

    def build_and_render() -> None:
        rendering.narrative_preview_render(
            execution=execution,
            author=author,
            snapshot=None,
            evidence=selection.evidence,
            events=[],
            classification="Internal",
            at=timezone.now(),
        )

    captured = {}
    real_render = n.render_preview_narrative

    def capture(ctx):
        captured["ctx"] = ctx
        return real_render(ctx)

    n.render_preview_narrative = capture
    build_and_render()
    n.render_preview_narrative = real_render

    preview()  # warm caches and connections
    preview_s = best(preview, runs)
    render_s = best(lambda: real_render(captured["ctx"]), runs)
    build_s = best(build_and_render, runs)
    status = verdict(preview_s, TARGET_SECONDS, higher_is_better=False)
    print(f"preview of an execution with {EVENT_COUNT:,} events (best of {runs})")
    print(f"  GET preview:                     {preview_s * 1000:8.1f} ms  target < {TARGET_SECONDS:.0f} s  {status}")
    print(
        f"  rendering alone (in memory):     {render_s * 1000:8.1f} ms  ratio preview/render {preview_s / render_s:.2f}"
    )
    print(f"  load + redact + render:          {build_s * 1000:8.1f} ms  ratio preview/build {preview_s / build_s:.2f}")


if __name__ == "__main__":
    main()
