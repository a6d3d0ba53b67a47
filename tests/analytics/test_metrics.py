"""/metrics: Prometheus text derived from the database, every metric docs/analytics.md names, refused to anonymous
clients."""

from datetime import timedelta

import pytest
from django.test import Client
from knox.models import AuthToken
from prometheus_client.parser import text_string_to_metric_families

from exports.models import PackagingRun
from exports.services.lifecycle import export_lifecycle_record

pytestmark = pytest.mark.django_db
URL = "/metrics"
REQUIRED = {
    "dossier_packaging_duration_seconds": "histogram",
    "dossier_packaging_failures": "counter",
    "dossier_packaged_bytes": "counter",
    "dossier_artifact_integrity_failures": "counter",
    "dossier_retention_pruned": "counter",
    "dossier_packaging_queue_depth": "gauge",
    "dossier_overdue_stages": "gauge",
}


@pytest.fixture
def staff(crew):
    user = crew.admin
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def telemetry(known, now, crew):
    a, b, c = known
    runs = [
        ("succeeded", 800, 1000, ""),
        ("succeeded", 45_000, 3000, ""),
        ("retrying", 2_000, None, "storage_unavailable"),
        ("failed", 700_000, None, "time_limit_exceeded"),
        ("failed", 100, None, "storage_unavailable"),
    ]
    for attempt, (status, duration_ms, size, code) in enumerate(runs, start=1):
        PackagingRun.objects.create(
            export=a,
            attempt=attempt,
            status=status,
            started_at=now - timedelta(minutes=5),
            finished_at=now,
            duration_ms=duration_ms,
            bytes=size,
            error_code=code,
        )
    for event_type in (
        "narrative_export.artifact.integrity_failed",
        "narrative_export.artifact.integrity_failed",
        "narrative_export.artifact.expired",
    ):
        export_lifecycle_record(export=a, event_type=event_type, payload={})
    return known


def scrape(client) -> dict:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def sample(families, name, suffix="", **labels):
    family = families[name]
    return next(
        s.value
        for s in family.samples
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_every_metric_is_exposed_and_parses(staff, telemetry):
    client = Client()
    client.force_login(staff)
    families = scrape(client)
    for name, kind in REQUIRED.items():
        assert name in families, name
        assert families[name].type == kind


def test_figures_come_from_the_database(staff, telemetry):
    client = Client()
    client.force_login(staff)
    families = scrape(client)
    name = "dossier_packaging_duration_seconds"
    assert sample(families, name, "_count", status="succeeded") == 2
    assert sample(families, name, "_sum", status="succeeded") == pytest.approx(45.8)
    assert sample(families, name, "_bucket", status="succeeded", le="1.0") == 1
    assert sample(families, name, "_bucket", status="succeeded", le="+Inf") == 2
    assert sample(families, name, "_bucket", status="failed", le="600.0") == 1
    assert sample(families, "dossier_packaging_failures", "_total", error_code="storage_unavailable") == 2
    assert sample(families, "dossier_packaging_failures", "_total", error_code="time_limit_exceeded") == 1
    assert sample(families, "dossier_packaged_bytes", "_total") == 4000
    assert sample(families, "dossier_artifact_integrity_failures", "_total") == 2
    assert sample(families, "dossier_retention_pruned", "_total", category="artifact") == 1
    assert sample(families, "dossier_packaging_queue_depth", state="awaiting_approval") == 3
    assert sample(families, "dossier_packaging_queue_depth", state="queued") == 0
    assert sample(families, "dossier_overdue_stages", role="qa_approver", team="alpha") == 1
    assert sample(families, "dossier_overdue_stages", role="reviewer", team="alpha") == 0


def test_empty_database_still_exposes_every_metric(staff):
    client = Client()
    client.force_login(staff)
    families = scrape(client)
    assert set(REQUIRED) <= set(families)


def test_anonymous_is_refused_by_default(client, known):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_anonymous_allowed_by_setting(client, settings, known):
    settings.METRICS_ALLOW_ANONYMOUS = True
    assert set(REQUIRED) <= set(scrape(client))


def test_scrape_token(client, settings, known):
    settings.METRICS_BEARER_TOKEN = "s3cret-scrape-token"
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert response.status_code == 200


def test_staff_api_token_works_and_non_staff_is_forbidden(client, staff, crew):
    _, token = AuthToken.objects.create(user=staff)
    assert client.get(URL, HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION="Token not-a-token").status_code == 401
    other = Client()
    other.force_login(crew.operator)
    assert other.get(URL).status_code == 403


def test_query_count_is_fixed(staff, telemetry, django_assert_max_num_queries):
    client = Client()
    client.force_login(staff)
    with django_assert_max_num_queries(14):  # 8, 5 for the operations figures, 1 for pending trusted timestamps
        assert client.get(URL).status_code == 200


def test_operations_figures(staff, telemetry, team, tmp_path):
    from django.utils import timezone

    from exports.feed.service import governance_feed_run_recorded
    from exports.feed.sinks import FileSink
    from exports.models import ExportArtifact
    from exports.services.verification import verification_record
    from governance.services.jobs import job_run_record

    verification_record(source="verify_export", ok=False, problem_codes=["payload_digest_mismatch"])
    verification_record(source="verify_export", ok=True)
    verification_record(source="fixity", ok=False)
    client = Client()
    client.force_login(staff)

    def figures() -> dict:
        text = client.get(URL).content.decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    before = figures()
    assert before[("dossier_verify_failures_total", (("source", "verify_export"),))] == 1
    assert before[("dossier_verify_failures_total", (("source", "fixity"),))] == 1
    stored = sum(ExportArtifact.objects.filter(expired_at__isnull=True).values_list("size", flat=True))
    assert before[("dossier_storage_bytes", (("tier", "hot"),))] == stored
    assert before[("dossier_feed_lag_events", ())] > 0 and before[("dossier_feed_lag_seconds", ())] >= 0
    assert ("dossier_feed_last_success_timestamp_seconds", ()) not in before
    assert ("dossier_retention_last_run_timestamp_seconds", ()) not in before  # absent until retention runs
    governance_feed_run_recorded(sink=FileSink(tmp_path / "feed.ndjson"), limit=100_000)
    job_run_record(job="retention", started_at=timezone.now(), outcome="succeeded")
    after = figures()
    assert after[("dossier_feed_lag_events", ())] == 0
    last_success = after[("dossier_feed_last_success_timestamp_seconds", ())]
    assert last_success == pytest.approx(timezone.now().timestamp(), abs=60)
    assert after[("dossier_retention_last_run_timestamp_seconds", ())] > 0
