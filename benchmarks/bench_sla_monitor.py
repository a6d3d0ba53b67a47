"""The SLA monitor over 50,000 open stages of which 5,000 are overdue (docs/approvals.md, "The SLA monitor").

Run from the repository root: ``python benchmarks/bench_sla_monitor.py`` (PostgreSQL database from
``APPROVALS_BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/dossier_bench_approvals``, created and
migrated on first use; its approval and export tables are truncated). Prints the monitor's wall time and query count,
the time of one raw SQL UPDATE marking the same rows, their ratio, and PASS/MISS against the 10 s budget. It runs
the monitor at two overdue volumes to show the query count depends on batches, not rows, and once more with every
overdue stage also past its escalation threshold (markers, history, events, audit rows and emails for both).
Always exits 0.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

from _django import setup, verdict

DATABASE_URL = os.environ.get(
    "APPROVALS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dossier_bench_approvals"
)
OPEN_STAGES = 50_000
OVERDUE = 5_000
BUDGET_SECONDS = 10.0


def seed(now):
    from django.db import connection, transaction

    from approvals.models import ApprovalLadder, ApprovalStage
    from exports.models import Execution, NarrativeExport
    from governance.models import Team
    from tests.factories import UserFactory

    with transaction.atomic():
        team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        author = UserFactory(username="bench-author")
        per_execution = 100
        executions = Execution.objects.bulk_create(
            Execution(team=team, title=f"Run {i}", owner=author) for i in range(OPEN_STAGES // per_execution)
        )
        exports = NarrativeExport.objects.bulk_create(
            (
                NarrativeExport(
                    execution=execution,
                    version=v + 1,
                    author=author,
                    narrative_digest="a" * 64,
                    status="awaiting_approval",
                )
                for execution in executions
                for v in range(per_execution)
            ),
            batch_size=5000,
        )
        ladders = ApprovalLadder.objects.bulk_create(
            (ApprovalLadder(export=export, escalate_after_hours=24) for export in exports), batch_size=5000
        )
        stages = []
        for i, ladder in enumerate(ladders):
            started = now - timedelta(hours=30 if i < OVERDUE else 1)
            stages.append(
                ApprovalStage(
                    ladder=ladder,
                    index=0,
                    name="Scientific review",
                    required_role="reviewer",
                    sla_hours=24,
                    status="in_progress",
                    started_at=started,
                    due_at=started + timedelta(hours=24),
                    escalate_at=started + timedelta(hours=48),
                )
            )
        ApprovalStage.objects.bulk_create(stages, batch_size=5000)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE execution_narrative_exports e SET packaging_queue_state = jsonb_build_object(
                    'status', 'awaiting_approval', 'iteration', 1, 'forecast', NULL, 'attempts', 0,
                    'pending_stage', jsonb_build_object('id', s.id, 'index', 0, 'name', s.name,
                                                        'required_role', s.required_role))
                FROM approvals_approvalladder l JOIN approvals_approvalstage s ON s.ladder_id = l.id
                WHERE l.export_id = e.id AND l.id = ANY(%s)
                """,
                [[ladder.pk for ladder in ladders]],
            )
    return [ladder.pk for ladder in ladders]


def clean():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE approvals_approvalhistory, approvals_approvalsignature, approvals_approvalstage, "
            "approvals_approvalladder, approvals_enforcementobservation, approvals_slamonitorstate, "
            "execution_narrative_exports, exports_executionevent, exports_execution, governance_auditevent, "
            "governance_auditchainhead CASCADE"
        )


def rearm(ladder_ids: list[int], overdue: int, now, *, escalate: bool = False) -> None:
    """Put ``overdue`` stages back past due and unmarked, and past their escalation threshold too with
    ``escalate`` (history, events and audit rows are left)."""
    from approvals.models import ApprovalStage

    ApprovalStage.objects.update(
        overdue_at=None, escalated_at=None, due_at=now + timedelta(hours=20), escalate_at=now + timedelta(hours=44)
    )
    ApprovalStage.objects.filter(ladder_id__in=ladder_ids[:overdue]).update(
        due_at=now - timedelta(hours=30 if escalate else 6),
        escalate_at=now - timedelta(hours=6) if escalate else now + timedelta(hours=18),
    )


def monitor(now) -> tuple[float, int, object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from approvals.services.monitor import sla_monitor_run

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        report = sla_monitor_run(now=now)
        elapsed = time.perf_counter() - started
    return elapsed, len(queries), report


def raw_update(now) -> tuple[float, int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            "UPDATE approvals_approvalstage SET overdue_at = %s "
            "WHERE status = 'in_progress' AND overdue_at IS NULL AND due_at < %s",
            [now, now],
        )
        elapsed = time.perf_counter() - started
        return elapsed, cursor.rowcount


def main() -> None:
    global OPEN_STAGES, OVERDUE
    if "--quick" in sys.argv:
        OPEN_STAGES, OVERDUE = 5_000, 500
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    setup(DATABASE_URL)
    from django.conf import settings
    from django.utils import timezone

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clean()
    now = timezone.now()
    print(f"seeding {OPEN_STAGES:,} open stages ...", flush=True)
    started = time.perf_counter()
    ladder_ids = seed(now)
    print(f"  seeded in {time.perf_counter() - started:.1f} s")
    from django.db import connection

    with connection.cursor() as cursor:  # fresh bulk data: give the planner the statistics autovacuum would
        cursor.execute("ANALYZE")
    batch = settings.APPROVALS_SLA_MONITOR_BATCH
    results = {}
    for overdue in (OVERDUE // 2, OVERDUE):
        rearm(ladder_ids, overdue, now)
        results[overdue] = monitor(now)
    rearm(ladder_ids, OVERDUE, now, escalate=True)
    escalated = monitor(now)
    rearm(ladder_ids, OVERDUE, now)
    raw_seconds, raw_rows = raw_update(now)
    elapsed, queries, report = results[OVERDUE]
    half_elapsed, half_queries, _ = results[OVERDUE // 2]
    print(f"SLA monitor, {OPEN_STAGES:,} open stages, batch size {batch}")
    print(f"  {OVERDUE // 2:>6,} overdue: {half_elapsed:7.3f} s, {half_queries} queries")
    print(f"  {OVERDUE:>6,} overdue: {elapsed:7.3f} s, {queries} queries (marked {report.overdue:,})")
    print("  phases: " + ", ".join(f"{phase} {value:.2f} s" for phase, value in report.seconds.items()))
    esc_elapsed, esc_queries, esc_report = escalated
    print(
        f"  {OVERDUE:>6,} overdue and past escalation: {esc_elapsed:7.3f} s, {esc_queries} queries "
        f"(marked {esc_report.overdue:,} overdue, {esc_report.escalated:,} escalated, {esc_report.emails} emails)"
    )
    print(f"  raw SQL UPDATE of the same {raw_rows:,} rows: {raw_seconds * 1000:.1f} ms")
    print(f"  ratio monitor / raw UPDATE: {elapsed / raw_seconds:.1f}x")
    print(f"  queries per 1,000 overdue stages: {queries / (OVERDUE / 1000):.1f}")
    outcome = verdict(elapsed, BUDGET_SECONDS, higher_is_better=False) if report.overdue == OVERDUE else "MISS"
    print(f"  {outcome}: under {BUDGET_SECONDS:.0f} s for {OVERDUE:,} overdue stages")
    complete = esc_report.overdue == esc_report.escalated == OVERDUE
    outcome = verdict(esc_elapsed, BUDGET_SECONDS, higher_is_better=False) if complete else "MISS"
    print(f"  {outcome}: under {BUDGET_SECONDS:.0f} s for {OVERDUE:,} stages overdue and escalated in one run")
    clean()


if __name__ == "__main__":
    main()
