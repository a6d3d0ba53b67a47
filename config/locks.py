"""Locks that matter live in the database, never in the cache (docs/operations.md, "Cache down").

``advisory_lock(name)`` holds a PostgreSQL session-level advisory lock on the default connection: it is held across
transactions and released by the server when the holder's connection dies, so a crashed run never leaves it
behind, and a cache outage cannot let two runs overlap. Without PostgreSQL (SQLite, ``make run``) an exclusive
``flock`` on a file under ``var/locks/`` stands in: it too dies with its process.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)


def advisory_key(name: str) -> int:
    """The signed 64-bit key of the lock called ``name`` (stable across processes and releases)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(name: str) -> Iterator[bool]:
    """Yield True when this process holds the lock ``name``, False when another process holds it (never waits)."""
    if connection.vendor == "postgresql":
        with postgresql_advisory_lock(advisory_key(name)) as held:
            yield held
    else:
        with _file_lock(name) as held:
            yield held


@contextmanager
def postgresql_advisory_lock(key: int) -> Iterator[bool]:
    """Yield whether this session now holds the PostgreSQL advisory lock ``key`` (never waits); released on exit,
    or by the server when the connection dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except (OperationalError, InterfaceError):  # the session is gone, and the lock with it
                logger.warning("could not release advisory lock %s: the connection is gone", key)


@contextmanager
def _file_lock(name: str) -> Iterator[bool]:
    directory = Path(settings.VAR_DIR) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
