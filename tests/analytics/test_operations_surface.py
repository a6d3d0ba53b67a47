"""The operations surface checked with the tools that consume it: promtool for /metrics and the alert rules, and
the Grafana dashboard's queries against the metrics /metrics exposes."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from exports.models import PackagingRun
from exports.services.verification import verification_record
from governance.services.jobs import job_run_record
from tests.conftest import unavailable

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dossier.json"


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not installed (Debian package prometheus; scripts/bootstrap.sh --dev)")
    return path


@pytest.fixture
def exposition(crew, telemetry_rows) -> str:
    crew.admin.is_staff = True
    crew.admin.save()
    client = Client()
    client.force_login(crew.admin)
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def telemetry_rows(known):
    """Data behind every family, the optional gauges included (feed and retention runs recorded)."""
    now = timezone.now()
    for attempt, (status, code) in enumerate([("succeeded", ""), ("failed", "storage_unavailable")], start=1):
        PackagingRun.objects.create(
            export=known[0], attempt=attempt, status=status, started_at=now, finished_at=now, duration_ms=900,
            bytes=1000 if not code else None, error_code=code,
        )  # fmt: skip
    verification_record(source="fixity", ok=False)
    job_run_record(job="governance-feed", started_at=now, outcome="succeeded")
    job_run_record(job="retention", started_at=now, outcome="succeeded")


def exposed_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads: identifiers with an underscore that are not functions, grouping
    labels or label matchers."""
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    return {name for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr) if "_" in name}


def test_promtool_accepts_the_metrics_output(promtool, exposition):
    result = subprocess.run(  # noqa: S603
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules_and_their_unit_tests(promtool):
    for command in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERTS.with_name("alerts.test.yml"))]):
        result = subprocess.run([promtool, *command], capture_output=True, text=True, check=False)  # noqa: S603
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_and_alert_query_names_exposed_metrics(exposition):
    exposed = exposed_names(exposition)
    for required in (
        "dossier_verify_failures_total",
        "dossier_storage_bytes",
        "dossier_feed_lag_events",
        "dossier_feed_last_success_timestamp_seconds",
        "dossier_retention_last_run_timestamp_seconds",
    ):
        assert required in exposed
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert queries and all(panel["targets"] for panel in dashboard["panels"])
    alerts = re.findall(r"^\s+expr: (.+)$", ALERTS.read_text(), flags=re.MULTILINE)
    assert len(alerts) >= 6
    for expr in [*queries, *alerts]:
        names = metric_names(expr)
        assert names, expr
        assert names <= exposed, (expr, names - exposed)


def test_the_name_check_catches_an_unknown_metric():
    assert metric_names('sum by (role) (rate(exporter_run_failures_total{job="x"}[5m]))') == {
        "exporter_run_failures_total"
    }
