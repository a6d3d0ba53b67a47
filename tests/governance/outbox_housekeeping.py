"""Housekeeping callables for ``DOSSIER_OUTBOX_AFTER_RELAY`` in tests: one leaves a trace in the database, one
fails."""

from governance.models import ScheduledJobRun
from governance.services.jobs import job_run_record


def record_run() -> None:
    from django.utils import timezone

    job_run_record(job="outbox-housekeeping-test", started_at=timezone.now(), outcome="succeeded")


def broken() -> None:
    raise RuntimeError("housekeeping broke")


def runs() -> int:
    return ScheduledJobRun.objects.filter(job="outbox-housekeeping-test").count()
