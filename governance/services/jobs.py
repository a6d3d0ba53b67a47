"""Records of scheduled jobs' last runs, and the lock that keeps two runs of one job from overlapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.utils import timezone

from config.locks import advisory_key, advisory_lock
from governance.models import ScheduledJobRun

JOB_SUCCEEDED = "succeeded"


def job_run_record(
    *, job: str, started_at: datetime, outcome: str, rows: int = 0, details: dict[str, Any] | None = None
) -> ScheduledJobRun:
    """Store how the latest run of ``job`` ended; ``outcome`` ``succeeded`` also moves ``last_success_at``."""
    finished_at = timezone.now()
    defaults: dict[str, Any] = {
        "started_at": started_at,
        "finished_at": finished_at,
        "outcome": outcome,
        "rows": rows,
        "details": details or {},
    }
    if outcome == JOB_SUCCEEDED:
        defaults["last_success_at"] = finished_at
    record, _ = ScheduledJobRun.objects.update_or_create(job=job, defaults=defaults)
    return record


def _advisory_key(name: str) -> int:
    return advisory_key(f"dossier-job:{name}")


@contextmanager
def job_lock(name: str) -> Iterator[bool]:
    """Yield True when this process holds the job's lock, False when another run holds it.

    A database advisory lock (config/locks.py): on PostgreSQL a session lock that dies with the connection, so a
    crashed run never leaves it behind; never the cache, whose outage must not let two runs overlap.
    """
    with advisory_lock(f"dossier-job:{name}") as held:
        yield held
