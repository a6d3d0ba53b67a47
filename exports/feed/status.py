"""The feed's health for the reports page: cursor, rows, last run and outcome, lag, and the latest chunk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from exports.feed.cursors import DEFAULT_CURSOR_NAME, CursorState
from exports.feed.records import FeedLag, feed_lag, feed_records_after
from exports.feed.service import FEED_JOB
from governance.choices import RoleKey
from governance.models import FeedCursor, Membership, ScheduledJobRun

# Who may run the feed from the reports page: staff, and operators or admins of any team. The download of the
# latest chunk spans every team, so it is for staff only.
FEED_OPERATOR_ROLES = (RoleKey.OPERATOR, RoleKey.ADMIN)


@dataclass(frozen=True)
class FeedChunk:
    after: int
    until: int
    rows: int


@dataclass(frozen=True)
class FeedStatus:
    cursor: int
    rows: int
    updated_at: datetime | None
    last_run: ScheduledJobRun | None
    lag: FeedLag
    chunk: FeedChunk | None


def governance_feed_status() -> FeedStatus:
    row = FeedCursor.objects.filter(name=DEFAULT_CURSOR_NAME).first()  # read only: a page view writes nothing
    state = CursorState(row.cursor, row.rows, row.updated_at) if row is not None else CursorState()
    run = ScheduledJobRun.objects.filter(job=FEED_JOB).first()
    details = run.details if run is not None else {}
    chunk = None
    if details.get("chunk_until") is not None:
        chunk = FeedChunk(details["chunk_after"], details["chunk_until"], details.get("chunk_rows", 0))
    return FeedStatus(state.cursor, state.rows, state.updated_at, run, feed_lag(cursor=state.cursor), chunk)


def feed_chunk_lines(chunk: FeedChunk, *, batch_size: int = 5000) -> Iterator[bytes]:
    """The NDJSON of the feed rows after ``chunk.after`` up to ``chunk.until``, re-read from the audit chain (which
    never changes), one batch at a time."""
    cursor = chunk.after
    while batch := feed_records_after(cursor=cursor, limit=batch_size, until=chunk.until):
        yield b"".join(record.data + b"\n" for record in batch)
        cursor = batch[-1].sequence


def is_feed_operator(user) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_staff or Membership.objects.filter(user=user, role__key__in=FEED_OPERATOR_ROLES).exists()
