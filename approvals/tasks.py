from celery import shared_task

from approvals.services.audit_reviews import audit_reviews_schedule
from approvals.services.expiry import ladders_expire
from approvals.services.monitor import sla_monitor_run
from textpolicy.utc import utc_iso


@shared_task(
    name="approvals.monitor_narrative_approval_slas",
    soft_time_limit=600,
    time_limit=720,
    acks_late=True,  # idempotent: markers make a second run emit nothing new
)
def monitor_narrative_approval_slas() -> dict:
    return sla_monitor_run().as_dict()


@shared_task(name="approvals.expire_open_ladders", soft_time_limit=600, time_limit=720, acks_late=True)
def expire_open_ladders() -> dict:
    """Close ladders open past their template's limit (docs/records-lifecycle.md); idempotent."""
    return ladders_expire().as_dict()


@shared_task(name="approvals.schedule_audit_reviews", soft_time_limit=600, time_limit=720, acks_late=True)
def schedule_audit_reviews() -> dict:
    """Open last month's audit-trail reviews (idempotent: a month's reviews are opened once)."""
    result = audit_reviews_schedule()
    return {"period_start": utc_iso(result.period_start), "opened": len(result.opened)}
