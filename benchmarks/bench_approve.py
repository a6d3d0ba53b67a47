"""Latency of the approve endpoint (docs/approvals.md, "Signing"): p50/p95 split into password verification (Django's
real hasher) and everything else, with 4 concurrent clients signing different exports; plus the endpoint's query count
for ladders of different lengths (it must not grow with the ladder).

Run from the repository root: ``python benchmarks/bench_approve.py [--quick]`` (PostgreSQL database from
``APPROVALS_BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/dossier_bench_approvals``; its
approval and export tables are truncated). Clients are separate processes, like web workers. Always exits 0.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

from _django import setup, verdict

DATABASE_URL = os.environ.get(
    "APPROVALS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dossier_bench_approvals"
)
CLIENTS = 4
WARM_UP = 3  # requests per client before the measured ones (not counted)
TARGET_REST_P95_MS = 25.0
PASSWORD = "bench-signing-password"  # noqa: S105 - a throwaway benchmark account


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def clean() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE approvals_approvalhistory, approvals_approvalsignature, approvals_approvalstage, "
            "approvals_approvalladder, approvals_signatureattempt, execution_narrative_exports, "
            "exports_executionevent, exports_execution, governance_auditevent, governance_auditchainhead, "
            "governance_membership CASCADE"
        )


def seed(per_client: int, stage_count: int = 3) -> tuple[list[int], dict[int, list[int]]]:
    """One reviewer per client, each with its own exports (ladders of ``stage_count`` stages)."""
    from django.contrib.auth import get_user_model

    from approvals.models import SignatureCertification
    from approvals.services.signing_controls import CURRENT_STATEMENT, signer_certify
    from exports.services.executions import execution_create
    from governance.models import Membership, Role, Team
    from tests.approvals.factories import export_with_ladder, published_snapshot

    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    User = get_user_model()

    def user(name: str, role: str):
        account, _ = User.objects.get_or_create(username=name, defaults={"first_name": name.title(), "last_name": "B"})
        account.set_password(PASSWORD)
        account.save()
        Membership.objects.get_or_create(user=account, team=team, role=Role.objects.get(key=role))
        return account

    author = user("bench-author", "scientist")
    stages = [
        {"name": f"Stage {i + 1}", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"}
        for i in range(stage_count)
    ]
    snapshot = published_snapshot(key=f"bench-{stage_count}-{time.monotonic_ns()}", stages=stages)
    signers, exports = [], {}
    for index in range(CLIENTS):
        signer = user(f"bench-signer-{index}", "reviewer")
        if not SignatureCertification.objects.filter(user=signer).exists():  # before a first signature (part11.md)
            signer_certify(user=signer, password=PASSWORD, statement_version=CURRENT_STATEMENT.version)
        signers.append(signer.pk)
        execution = execution_create(team=team, title=f"Bench run {index}", owner=author)
        exports[signer.pk] = [
            export_with_ladder(execution=execution, author=author, snapshot=snapshot).pk for _ in range(per_client)
        ]
    return signers, exports


def client_process(signer_id: int, export_ids: list[int], start, results) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIClient

    from approvals.models import ApprovalStage
    from approvals.services import signing

    connection.close()
    hashing = []
    original = signing.password_verify

    def timed_check(user, raw):  # the password check as the request waits for it
        began = time.perf_counter()
        try:
            return original(user, raw)
        finally:
            hashing.append(time.perf_counter() - began)

    signing.password_verify = timed_check
    signer = get_user_model().objects.get(pk=signer_id)
    client = APIClient()
    client.force_authenticate(signer)
    plans = []
    for export_id in export_ids:
        stage = ApprovalStage.objects.get(ladder__export_id=export_id, index=0)
        execution_id = stage.ladder.export.execution_id
        url = f"/api/experiment-console/sessions/{execution_id}/exports/narrative/{export_id}/approve"
        plans.append((url, stage.pk))
    rows = []
    for index, (url, stage_id) in enumerate(plans):
        if index == WARM_UP:  # steady state: the first requests of a process pay for imports and caches
            start.wait()
            rows.clear()
        body = {
            "decision": "approve",
            "username": signer.username,  # both signature components (docs/part11.md)
            "password": PASSWORD,
            "meaning": "Reviewed",
            "expected_stage_id": stage_id,
        }
        hashing.clear()
        began = time.perf_counter()
        response = client.post(url, body, format="json")
        total = time.perf_counter() - began
        assert response.status_code == 200, response.content
        rows.append((total, sum(hashing)))
    results.put(rows)
    connection.close()


def query_count(stage_count: int) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from approvals.models import ApprovalStage

    signers, exports = seed(1, stage_count)
    export_id = exports[signers[0]][0]
    stage = ApprovalStage.objects.get(ladder__export_id=export_id, index=0)
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(pk=signers[0]))
    url = f"/api/experiment-console/sessions/{stage.ladder.export.execution_id}/exports/narrative/{export_id}/approve"
    signer = get_user_model().objects.get(pk=signers[0])
    body = {
        "decision": "approve",
        "username": signer.username,
        "password": PASSWORD,
        "meaning": "Reviewed",
        "expected_stage_id": stage.pk,
    }
    with CaptureQueriesContext(connection) as queries:
        assert client.post(url, body, format="json").status_code == 200
    return len(queries)


def run_clients(signers: list[int], exports: dict[int, list[int]]) -> list[tuple[float, float]]:
    """(total, password check) seconds of every measured request, the clients running at once."""
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(CLIENTS), context.Queue()
    processes = [
        context.Process(target=client_process, args=(signer, exports[signer], start, results)) for signer in signers
    ]
    for process in processes:
        process.start()
    rows = [row for _ in processes for row in results.get(timeout=900)]
    for process in processes:
        process.join()
    return rows


def main() -> None:
    per_client = WARM_UP + (8 if "--quick" in sys.argv else 40)
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    setup(DATABASE_URL)
    from django.conf import settings
    from django.contrib.auth.hashers import get_hasher

    clean()
    counts = {length: query_count(length) for length in (3, 10)}
    niceness = settings.DOSSIER_PASSWORD_CHECK_NICENESS
    runs = {}
    for label, value in (("as configured", niceness), ("hashing at request priority", 0)):
        clean()
        signers, exports = seed(per_client)
        settings.DOSSIER_PASSWORD_CHECK_NICENESS = value  # the forked clients inherit it
        runs[label] = run_clients(signers, exports)
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = niceness
    rows = runs["as configured"]
    total = [t * 1000 for t, _ in rows]
    hashing = [h * 1000 for _, h in rows]
    rest = [(t - h) * 1000 for t, h in rows]
    hasher = get_hasher()
    prepared = "on" if settings.DATABASES["default"].get("OPTIONS", {}).get("prepare_threshold") else "off"
    print(f"approve endpoint, {CLIENTS} concurrent clients, {len(rows)} signatures ({WARM_UP} warm-up requests per "
          f"client not counted), hasher {hasher.algorithm}, password checks at niceness +{niceness}, "
          f"prepared statements {prepared} (DB_PREPARED_STATEMENTS)")  # fmt: skip
    print(f"  {'':<22}{'p50 ms':>10}{'p95 ms':>10}")
    for label, values in (("total", total), ("password check", hashing), ("everything else", rest)):
        print(f"  {label:<22}{percentile(values, 50):>10.1f}{percentile(values, 95):>10.1f}")
    plain = [(t - h) * 1000 for t, h in runs["hashing at request priority"]]
    print(f"  {'(hashing at request priority: everything else)':<22}")
    print(f"  {'everything else':<22}{percentile(plain, 50):>10.1f}{percentile(plain, 95):>10.1f}")
    print(f"  share of the password check in p50: {percentile(hashing, 50) / percentile(total, 50):.0%}")
    print(f"  queries per approve: ladder of 3 stages {counts[3]}, of 10 stages {counts[10]}")
    rest_p95 = percentile(rest, 95)
    print(f"  {verdict(rest_p95, TARGET_REST_P95_MS, higher_is_better=False)}: everything else p95 under "
          f"{TARGET_REST_P95_MS:.0f} ms")  # fmt: skip
    print(f"  {'PASS' if counts[3] == counts[10] else 'MISS'}: query count independent of the ladder length")
    clean()


if __name__ == "__main__":
    main()
