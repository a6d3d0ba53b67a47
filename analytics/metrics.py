"""``/metrics`` (docs/analytics.md, "Metrics"; names in docs/operations.md): Prometheus text exposition derived from the
database at scrape time.

Nothing is counted in process memory, so every web and worker process reports the same, correct figures: the
packaging histogram, failures and bytes come from ``PackagingRun`` rows, integrity failures and retention
pruning from the audit trail (the lifecycle events ``narrative_export.artifact.integrity_failed`` and
``narrative_export.artifact.expired`` are written there on every occurrence), queue depth from export statuses
and overdue stages from the ladders; ``analytics.operations`` adds verification, storage, feed and retention
figures. A fixed number of aggregate queries per scrape, whatever the data size.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, F, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from rest_framework.exceptions import AuthenticationFailed

from analytics.operations import operations_families
from approvals.choices import LadderStatus, StageStatus
from approvals.models import ApprovalStage
from exports.choices import ExportStatus, PackagingRunStatus
from exports.events import EventType
from exports.models import NarrativeExport, PackagingRun
from governance.authentication import TokenAuthentication
from governance.models import AuditEvent
from governance.services.timestamps import timestamps_pending_counts

# Upper bounds (seconds) of the packaging duration histogram's buckets.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
FAILED_RUN_STATUSES = (PackagingRunStatus.FAILED, PackagingRunStatus.RETRYING, PackagingRunStatus.ABANDONED)
FINISHED_RUN_STATUSES = (PackagingRunStatus.SUCCEEDED, *FAILED_RUN_STATUSES)
# The classic text exposition format, which every Prometheus version scrapes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def packaging_duration_family() -> tuple[Metric, CounterMetricFamily]:
    aggregates = {
        f"le{index}": Count("id", filter=Q(duration_ms__lte=int(bound * 1000)))
        for index, bound in enumerate(DURATION_BUCKETS)
    }
    rows = (
        PackagingRun.objects.filter(status__in=FINISHED_RUN_STATUSES, duration_ms__isnull=False)
        .values("status")
        .annotate(total=Count("id"), duration=Sum("duration_ms"), bytes_out=Sum("bytes"), **aggregates)
        .order_by("status")
    )
    histogram = HistogramMetricFamily(
        "dossier_packaging_duration_seconds",
        "Duration of finished packaging runs, by outcome.",
        labels=["status"],
    )
    packaged = CounterMetricFamily("dossier_packaged_bytes", "Bytes of bundles published by successful packaging runs.")
    packaged_bytes = 0
    for row in rows:
        buckets = [(floatToGoString(bound), row[f"le{index}"]) for index, bound in enumerate(DURATION_BUCKETS)]
        buckets.append(("+Inf", row["total"]))
        histogram.add_metric([row["status"]], buckets, sum_value=(row["duration"] or 0) / 1000)
        if row["status"] == PackagingRunStatus.SUCCEEDED:
            packaged_bytes = row["bytes_out"] or 0
    packaged.add_metric([], packaged_bytes)
    return histogram, packaged


def packaging_failures_family() -> CounterMetricFamily:
    family = CounterMetricFamily(
        "dossier_packaging_failures", "Failed packaging attempts, by error code.", labels=["error_code"]
    )
    for code, count in (
        PackagingRun.objects.filter(status__in=FAILED_RUN_STATUSES)
        .values_list("error_code")
        .annotate(count=Count("id"))
        .order_by("error_code")
    ):
        family.add_metric([code or "unknown"], count)
    return family


def audit_families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
    categories: dict[str, str] = settings.ANALYTICS_RETENTION_PRUNED_ACTIONS
    counts = dict(
        AuditEvent.objects.filter(action__in=[EventType.ARTIFACT_INTEGRITY_FAILED, *categories])
        .values_list("action")
        .annotate(count=Count("id"))
        .order_by()
    )
    integrity = CounterMetricFamily(
        "dossier_artifact_integrity_failures",
        "Artifacts whose stored bytes did not match their recorded digest (from the audit trail).",
    )
    integrity.add_metric([], counts.get(EventType.ARTIFACT_INTEGRITY_FAILED, 0))
    pruned = CounterMetricFamily(
        "dossier_retention_pruned", "Items expired or purged by retention (from the audit trail).", labels=["category"]
    )
    per_category: dict[str, int] = {}
    for action, category in categories.items():
        per_category[category] = per_category.get(category, 0) + counts.get(action, 0)
    for category, count in sorted(per_category.items()):
        pruned.add_metric([category], count)
    return integrity, pruned


def queue_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    now = timezone.now()
    totals = NarrativeExport.objects.aggregate(
        queued=Count("id", filter=Q(status=ExportStatus.QUEUED)),
        packaging=Count("id", filter=Q(status=ExportStatus.PACKAGING)),
        awaiting_approval=Count("id", filter=Q(status=ExportStatus.AWAITING_APPROVAL)),
        oldest=Min("queued_at", filter=Q(status=ExportStatus.QUEUED)),
    )
    depth = GaugeMetricFamily(
        "dossier_packaging_queue_depth", "Exports waiting for or in packaging, by state.", labels=["state"]
    )
    for state in ("awaiting_approval", "queued", "packaging"):
        depth.add_metric([state], totals[state])
    oldest = GaugeMetricFamily(
        "dossier_packaging_oldest_queued_age_seconds", "Age of the oldest export waiting in the packaging queue."
    )
    oldest.add_metric([], max(0.0, (now - totals["oldest"]).total_seconds()) if totals["oldest"] else 0.0)
    return depth, oldest


def stage_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    now = timezone.now()
    rows = (
        ApprovalStage.objects.filter(status=StageStatus.IN_PROGRESS, ladder__status=LadderStatus.IN_PROGRESS)
        .values("required_role", team=F("ladder__export__execution__team__slug"))
        .annotate(
            open=Count("id"),
            overdue=Count("id", filter=Q(due_at__lt=now)),
            escalated=Count("id", filter=Q(escalated_at__isnull=False)),
        )
        .order_by("required_role", "team")
    )
    overdue = GaugeMetricFamily(
        "dossier_overdue_stages",
        "Approval stages past their due time, by required role and team.",
        labels=["role", "team"],
    )
    open_stages = GaugeMetricFamily(
        "dossier_open_stages", "Approval stages in progress, by required role and team.", labels=["role", "team"]
    )
    escalated = GaugeMetricFamily(
        "dossier_escalated_stages",
        "Approval stages in progress that the SLA monitor escalated, by required role and team.",
        labels=["role", "team"],
    )
    for row in rows:
        overdue.add_metric([row["required_role"], row["team"]], row["overdue"])
        open_stages.add_metric([row["required_role"], row["team"]], row["open"])
        escalated.add_metric([row["required_role"], row["team"]], row["escalated"])
    return overdue, open_stages, escalated


def timestamp_families() -> tuple[GaugeMetricFamily]:
    pending = GaugeMetricFamily(
        "dossier_trusted_timestamps_pending",
        "Trusted timestamps requested but not yet granted by a TSA, by subject (docs/trusted-time.md).",
        labels=["subject"],
    )
    for subject, count in sorted(timestamps_pending_counts().items()):
        pending.add_metric([subject], count)
    return (pending,)


class DatabaseCollector:
    """A prometheus_client collector whose every figure is read from the database when scraped."""

    def collect(self) -> Iterator[Metric]:
        yield from packaging_duration_family()
        yield packaging_failures_family()
        yield from audit_families()
        yield from queue_families()
        yield from stage_families()
        yield from operations_families()
        yield from timestamp_families()


def metrics_text() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def metrics_response() -> HttpResponse:
    response = HttpResponse(metrics_text(), content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def _bearer_ok(request: HttpRequest) -> bool:
    expected = settings.METRICS_BEARER_TOKEN
    header = request.headers.get("Authorization", "")
    return bool(expected) and header.startswith("Bearer ") and constant_time_compare(header[7:].strip(), expected)


def metrics_auth_failure(request: HttpRequest) -> HttpResponse | None:
    """None when the scrape may proceed: anonymous scrapes allowed by METRICS_ALLOW_ANONYMOUS, the scrape token
    (``Authorization: Bearer <METRICS_BEARER_TOKEN>``), or a staff user (session or API token). The figures span
    every team, so other users are refused."""
    if settings.METRICS_ALLOW_ANONYMOUS or _bearer_ok(request):
        return None
    user = request.user
    if not user.is_authenticated and request.headers.get("Authorization", "").startswith("Token "):
        try:
            authenticated = TokenAuthentication().authenticate(request)
        except AuthenticationFailed:
            authenticated = None
        if authenticated is not None:
            user = authenticated[0]
    if user.is_authenticated and user.is_active:
        if user.is_staff:
            return None
        return HttpResponse(
            "metrics are restricted to staff and the scrape token\n", status=403, content_type="text/plain"
        )
    response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
