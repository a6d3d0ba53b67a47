"""Celery tasks of the exports app: thin wrappers around services, ids in."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from config.logs import log_context
from exports.feed.service import governance_feed_run_recorded, scheduled_sink
from exports.services.checkpoints import audit_checkpoint_sign
from exports.services.packaging import TRANSIENT_ERRORS, export_package, exports_sweep_stuck


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


@shared_task(name="exports.export_governance_events", soft_time_limit=50 * 60, time_limit=55 * 60)
def export_governance_events() -> dict:
    """The hourly governance event feed run (docs/feed.md): ``db`` cursor, advisory-locked, outcome recorded."""
    result = governance_feed_run_recorded(sink=scheduled_sink(), limit=settings.DOSSIER_FEED_RUN_LIMIT)
    return {"outcome": result.outcome, "exported": result.exported, "cursor": result.state.cursor}


@shared_task(name="exports.checkpoint_audit_chain", soft_time_limit=120, time_limit=180)
def checkpoint_audit_chain() -> dict:
    checkpoint = audit_checkpoint_sign()
    return {"checkpoint": checkpoint.pk, "sequence": checkpoint.sequence}
