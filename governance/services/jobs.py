"""Records of scheduled jobs' last runs, and the lock that keeps two runs of one job from overlapping."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

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
    return int.from_bytes(hashlib.sha256(f"dossier-job:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def job_lock(name: str, *, timeout: int = 3600) -> Iterator[bool]:
    """Yield True when this process holds the job's lock, False when another run holds it.

    On PostgreSQL a session advisory lock on the default connection: it dies with the connection, so a crashed
    run never leaves it behind. Elsewhere the cache (one process in practice) stands in.
    """
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    cache_key = f"job-lock:{name}"
    held = cache.add(cache_key, "1", timeout)
    try:
        yield held
    finally:
        if held:
            cache.delete(cache_key)
