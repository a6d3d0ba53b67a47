"""Benchmark: the template list API with 1,000 template keys × 5 versions.

Checks that every scenario runs a fixed number of queries (the same on the first and on a deep page, with small
and large pages) and that the p95 latency of default-size pages is under the target (100 ms on PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dossier_templates \\
        .venv/bin/python benchmarks/bench_templates.py [--keys 1000] [--versions 5] [--requests 100] [--quick]

It builds a throwaway test database (``test_<name>``) and drops it afterwards; the configured database is never
touched. Exit status: 0 when every scenario meets the target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DOSSIER_HTTPS", "0")  # in-process test client over plain HTTP

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

PAGE_SIZE = 50  # REST_FRAMEWORK["PAGE_SIZE"]

STAGES = [
    {"name": "Scientific review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"},
    {"name": "QA approval", "required_role": "qa_approver", "sla_hours": 48, "meaning": "Approved"},
    {"name": "Compliance sign-off", "required_role": "compliance", "sla_hours": 72, "meaning": "Compliant"},
]


def populate(keys: int, versions: int):
    from governance.models import (
        Membership,
        Role,
        Team,
        WorkflowTemplate,
        WorkflowTemplateAssignment,
        WorkflowTemplateSnapshot,
    )
    from governance.services.audit import canonical_json
    from governance.services.templates import snapshot_hash, template_snapshot_document
    from tests.factories import UserFactory

    team = Team.objects.create(slug="bench", name="Bench")
    user = UserFactory(username="bench-curator")
    Membership.objects.create(user=user, team=team, role=Role.objects.get(key="compliance"))
    now = timezone.now()
    templates = []
    for k in range(keys):
        for v in range(1, versions + 1):
            latest = v == versions
            status = "draft" if latest and k % 3 == 0 else ("archived" if v == 1 and k % 2 else "published")
            templates.append(
                WorkflowTemplate(
                    team=team,
                    template_key=f"tpl-{k:04d}",
                    version=v,
                    name=f"Template {k} v{v}",
                    description="Benchmark ladder",
                    status=status,
                    is_latest=latest,
                    stage_blueprints=STAGES,
                    permitted_roles=["compliance", "qa_approver", "reviewer"],
                    sla_defaults={"sla_hours": 48, "escalate_after_hours": 24},
                    created_by=user,
                    published_at=None if status == "draft" else now,
                )
            )
    WorkflowTemplate.objects.bulk_create(templates, batch_size=1000)
    snapshots = []
    for template in WorkflowTemplate.objects.exclude(status="draft").select_related("team").iterator(chunk_size=2000):
        canonical = canonical_json(template_snapshot_document(template))
        snapshots.append(
            WorkflowTemplateSnapshot(
                template=template,
                template_key=template.template_key,
                version=template.version,
                canonical_json=canonical,
                content_sha256=snapshot_hash(canonical),
                created_by=user,
            )
        )
    WorkflowTemplateSnapshot.objects.bulk_create(snapshots, batch_size=1000)
    for template in WorkflowTemplate.objects.filter(is_latest=True, template_key__endswith="7")[:50]:
        WorkflowTemplateAssignment.objects.create(
            template=template, team=team, protocol_template_key=f"proto-{template.pk}"
        )
    first = WorkflowTemplate.objects.filter(is_latest=True).order_by("template_key").first()
    WorkflowTemplateAssignment.objects.create(template=first, team=team)
    return user, len(templates), len(snapshots)


def scenarios(keys: int, versions: int) -> list[tuple[str, dict, bool]]:
    """(name, query parameters, held to the latency target). Every scenario must run the same number of queries;
    the 500-row page is reported for sizing only, since its cost is serializing ten times the default page."""
    last_latest = str(max(1, -(-keys // PAGE_SIZE)))
    last_all = str(max(1, -(-(keys * versions) // PAGE_SIZE)))
    return [
        ("latest, page 1", {}, True),
        (f"latest, page {last_latest} (last)", {"page": last_latest}, True),
        ("include_all, page 1", {"include_all": "true"}, True),
        (f"include_all, page {last_all} (last)", {"include_all": "true", "page": last_all}, True),
        ("status=published", {"status": "published"}, True),
        ("key, include_all", {"key": f"tpl-{keys // 2:04d}", "include_all": "true"}, True),
        ("team filter", {"team": "bench", "include_all": "true"}, True),
        ("include_all, 500 per page", {"include_all": "true", "page_size": "500"}, False),
    ]


def measure(client, params: dict, requests: int) -> tuple[list[float], set[int]]:
    timings, query_counts = [], set()
    for _ in range(requests):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get("/api/governance/templates", params)
            timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"error: {params} answered {response.status_code}: {response.content[:300]!r}")
        query_counts.add(len(queries))
    return timings, query_counts


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--target-ms", type=float, default=100.0)
    parser.add_argument("--quick", action="store_true", help="200 keys × 5 versions, 30 requests (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.keys, args.requests = min(args.keys, 200), min(args.requests, 30)
    if args.keys < 1 or args.versions < 1 or args.requests < 2:
        parser.error("keys and versions must be ≥ 1 and requests ≥ 2")

    from rest_framework.test import APIClient

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        user, template_rows, snapshot_rows = populate(args.keys, args.versions)
        print(
            f"database: {connection.vendor}; {template_rows} templates ({args.keys} keys × {args.versions} versions), "
            f"{snapshot_rows} snapshots; set up in {time.perf_counter() - started:.1f} s"
        )
        client = APIClient()
        client.force_authenticate(user)
        measure(client, {}, 3)  # warm caches and connections
        ok = True
        all_counts: set[int] = set()
        print(f"{'scenario':32} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for name, params, targeted in scenarios(args.keys, args.versions):
            timings, counts = measure(client, params, args.requests)
            all_counts |= counts
            worst = p95(timings)
            if len(counts) != 1:
                verdict = "VARIES"
            elif not targeted:
                verdict = "(not targeted)"
            else:
                verdict = "ok" if worst < args.target_ms else "SLOW"
            ok &= verdict in {"ok", "(not targeted)"}
            print(
                f"{name:32} {'/'.join(map(str, sorted(counts))):>7} {statistics.median(timings):8.1f} "
                f"{worst:8.1f} {max(timings):8.1f}  {verdict}"
            )
        fixed = len(all_counts) == 1
        ok &= fixed
        print(f"query count fixed across scenarios and pages: {fixed} ({sorted(all_counts)})")
        print(f"target p95 < {args.target_ms:.0f} ms: {'met' if ok else 'MISSED'}")
        return 0 if ok else 1
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
