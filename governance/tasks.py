from celery import shared_task

from governance.services.audit import audit_chain_verify
from governance.services.login_guard import login_counters_purge
from governance.services.timestamps import timestamps_fetch_pending


@shared_task(name="governance.verify_audit_chain", soft_time_limit=1800, time_limit=2000)
def verify_audit_chain() -> dict:
    report = audit_chain_verify(record=True)
    return {"ok": report.ok, "rows": report.rows, "broken_sequence": report.broken_sequence}


@shared_task(name="governance.purge_login_counters", soft_time_limit=300, time_limit=360)
def purge_login_counters() -> int:
    return login_counters_purge()


@shared_task(name="governance.fetch_timestamps", soft_time_limit=300, time_limit=360)
def fetch_timestamps() -> dict:
    report = timestamps_fetch_pending()
    return {"granted": report.granted, "failed": report.failed}
