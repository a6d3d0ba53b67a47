"""Operations figures added to ``/metrics`` (docs/operations.md): verification failures, stored bytes per storage
tier, the governance event feed's lag and last success, and the last retention run. Read from the database at
scrape time like the rest of ``analytics.metrics``; five small queries.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Sum
from django.db.models.fields.json import KeyTextTransform
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exports.choices import StorageTier
from exports.events import EventType
from exports.feed.cursors import DEFAULT_CURSOR_NAME
from exports.feed.records import feed_lag
from exports.feed.service import FEED_JOB
from exports.models import ExportArtifact
from governance.models import AuditEvent, FeedCursor, ScheduledJobRun

# The job name the retention run records its runs under (``governance.services.jobs.job_run_record``).
RETENTION_JOB = "retention"


def verify_failures_family() -> CounterMetricFamily:
    family = CounterMetricFamily(
        "dossier_verify_failures",
        "Bundle verifications (verify_export, fixity checks) that found a problem, by source (from the audit trail).",
        labels=["source"],
    )
    rows = (
        AuditEvent.objects.filter(action=EventType.ARTIFACT_VERIFIED, payload__ok=False)
        .annotate(source=KeyTextTransform("source", "payload"))
        .values_list("source")
        .annotate(count=Count("id"))
        .order_by("source")
    )
    counts = {"verify_export": 0, "fixity": 0} | {source or "unknown": count for source, count in rows}
    for source, count in sorted(counts.items()):
        family.add_metric([source], count)
    return family


def storage_family() -> GaugeMetricFamily:
    """Bytes per storage tier (docs/storage-tiers-and-fixity.md); every tier is reported, empty ones as 0."""
    rows = (
        ExportArtifact.objects.filter(expired_at__isnull=True)
        .values_list("storage_tier")
        .annotate(total=Sum("size"))
        .order_by()
    )
    stored = dict.fromkeys(StorageTier.values, 0) | {tier: total or 0 for tier, total in rows}
    family = GaugeMetricFamily(
        "dossier_storage_bytes", "Bytes of stored (unexpired) bundle artifacts, by storage tier.", labels=["tier"]
    )
    for tier in StorageTier.values:
        family.add_metric([tier], stored[tier])
    return family


def feed_families() -> Iterator[Metric]:
    cursor = FeedCursor.objects.filter(name=DEFAULT_CURSOR_NAME).values_list("cursor", flat=True).first() or 0
    lag = feed_lag(cursor=cursor)
    events = GaugeMetricFamily(
        "dossier_feed_lag_events", "Governance events not yet exported by the scheduled feed (db cursor)."
    )
    events.add_metric([], lag.events)
    yield events
    age = GaugeMetricFamily("dossier_feed_lag_seconds", "Age of the oldest governance event not yet exported.")
    age.add_metric([], lag.oldest_age_seconds or 0.0)
    yield age
    runs = dict(
        ScheduledJobRun.objects.filter(job__in=[FEED_JOB, RETENTION_JOB], last_success_at__isnull=False).values_list(
            "job", "last_success_at"
        )
    )
    for job, name, text in (
        (FEED_JOB, "dossier_feed_last_success_timestamp_seconds", "When the governance event feed last succeeded."),
        (
            RETENTION_JOB,
            "dossier_retention_last_run_timestamp_seconds",
            "When retention enforcement last completed; absent until a retention run has happened.",
        ),
    ):
        family = GaugeMetricFamily(name, text)
        if (finished := runs.get(job)) is not None:
            family.add_metric([], finished.timestamp())
        yield family


def operations_families() -> Iterator[Metric]:
    yield verify_failures_family()
    yield storage_family()
    yield from feed_families()
