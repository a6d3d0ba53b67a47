"""Celery tasks of the exports app: thin wrappers around services, ids in."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from config.logs import log_context
from exports import worker  # noqa: F401 - connects the worker's takeover timer to Celery's signals
from exports.feed.service import governance_feed_run_recorded, scheduled_sink
from exports.services.checkpoints import audit_checkpoint_sign
from exports.services.fixity import FixityRunBusy, fixity_run_recorded
from exports.services.packaging import (
    TRANSIENT_ERRORS,
    export_package,
    exports_sweep_stuck,
    packaging_takeover_stale,
)
from exports.services.retention import retention_run_recorded
from exports.services.storage_tiers import LifecycleBusy, storage_lifecycle_recorded
from exports.services.team_data_exports import team_data_export_run
from governance.services.outbox import outbox_run


@shared_task(
    bind=True,
    name="exports.package_execution_narrative_export",
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=settings.DOSSIER_PACKAGING_MAX_RETRIES,
    soft_time_limit=settings.DOSSIER_PACKAGING_SOFT_TIME_LIMIT,
    time_limit=settings.DOSSIER_PACKAGING_TIME_LIMIT,
)
def package_execution_narrative_export(self, export_id: int) -> str:
    """Package one export version; idempotent (acks late, so a lost worker's message is delivered again)."""
    final_attempt = self.request.retries >= self.max_retries
    with log_context(export_id=export_id):
        return str(export_package(export_id=export_id, task_id=self.request.id, final_attempt=final_attempt))


@shared_task(name="exports.sweep_stuck_exports", soft_time_limit=120, time_limit=180)
def sweep_stuck_exports() -> list[int]:
    """Re-dispatch exports stuck in ``queued`` or with a lost packaging worker (scheduled every 5 minutes)."""
    return exports_sweep_stuck()


@shared_task(name="exports.take_over_stale_packaging", soft_time_limit=60, time_limit=90)
def take_over_stale_packaging() -> list[int]:
    """Re-queue exports whose packaging worker is gone (scheduled every 15 seconds; workers also check)."""
    return packaging_takeover_stale()


@shared_task(name="exports.export_governance_events", soft_time_limit=50 * 60, time_limit=55 * 60)
def export_governance_events() -> dict:
    """The hourly governance event feed run (docs/feed.md): ``db`` cursor, advisory-locked, outcome recorded."""
    result = governance_feed_run_recorded(sink=scheduled_sink(), limit=settings.DOSSIER_FEED_RUN_LIMIT)
    return {"outcome": result.outcome, "exported": result.exported, "cursor": result.state.cursor}


@shared_task(name="exports.checkpoint_audit_chain", soft_time_limit=120, time_limit=180)
def checkpoint_audit_chain() -> dict:
    checkpoint = audit_checkpoint_sign()
    return {"checkpoint": checkpoint.pk, "sequence": checkpoint.sequence}


@shared_task(name="exports.relay_outbox", soft_time_limit=120, time_limit=180, ignore_result=True)
def relay_outbox() -> dict:
    """Deliver the outbox's pending side effects (every 15 s; docs/architecture.md, "The outbox"), prune old
    deliveries and run the ``DOSSIER_OUTBOX_AFTER_RELAY`` housekeeping. Concurrent runs are safe (rows are claimed
    with ``SKIP LOCKED``)."""
    report = outbox_run()
    return {
        "delivered": report.relay.delivered,
        "failed": report.relay.failed,
        "pruned": report.pruned,
        "housekeeping_failed": report.housekeeping_failed,
    }


@shared_task(name="exports.enforce_retention", soft_time_limit=3 * 60 * 60, time_limit=3 * 60 * 60 + 300)
def enforce_retention() -> dict:
    """The daily retention run (docs/records-lifecycle.md): advisory-locked, outcome recorded as ``retention``."""
    return retention_run_recorded().as_json()


@shared_task(
    name="exports.build_team_data_export",
    acks_late=True,
    soft_time_limit=settings.DOSSIER_PACKAGING_SOFT_TIME_LIMIT,
    time_limit=settings.DOSSIER_PACKAGING_TIME_LIMIT,
)
def build_team_data_export(request_id: int) -> str:
    """Build a team's data bundle requested through the API (docs/team-data.md); once per request (a delivery
    again after a lost worker starts the build over once the time limit has passed)."""
    return team_data_export_run(request_id=request_id)


@shared_task(name="exports.verify_artifacts", soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def verify_artifacts() -> dict:
    """The daily fixity check (docs/storage-tiers-and-fixity.md): ``DOSSIER_FIXITY_SAMPLE`` objects, oldest-checked
    first (all when unset)."""
    try:
        report = fixity_run_recorded(sample=settings.DOSSIER_FIXITY_SAMPLE)
    except FixityRunBusy:
        return {"outcome": "busy"}
    return {"checked": report.checked, "failures": len(report.failures), "errors": len(report.errors)}


@shared_task(name="exports.storage_lifecycle", soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def storage_lifecycle() -> dict:
    """The daily move of stored objects to colder tiers (docs/storage-tiers-and-fixity.md)."""
    try:
        report = storage_lifecycle_recorded()
    except LifecycleBusy:
        return {"outcome": "busy"}
    return {"due": len(report.planned), **report.outcomes}
