"""Running the feed: batches after the cursor go to the sink, and the cursor follows each accepted batch."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from exports.feed.cursors import CursorState, CursorStore, DbCursorStore, FileCursorStore
from exports.feed.records import feed_records_after
from exports.feed.sinks import FileSink, Sink, SinkRefused, WebhookSink
from governance.models import ScheduledJobRun
from governance.services.jobs import JOB_SUCCEEDED, job_lock, job_run_record

logger = logging.getLogger(__name__)

FEED_JOB = "governance-feed"
OUTCOME_REFUSED = "refused"
OUTCOME_ERROR = "failed"
OUTCOME_SKIPPED = "skipped"


@dataclass
class FeedRunResult:
    start: CursorState
    state: CursorState
    exported: int = 0
    batches: int = 0
    refused: str = ""  # why the sink refused the last batch, when it did
    first_sequence: int | None = None
    last_sequence: int | None = None
    skipped: bool = False

    @property
    def outcome(self) -> str:
        if self.skipped:
            return OUTCOME_SKIPPED
        return OUTCOME_REFUSED if self.refused else JOB_SUCCEEDED


def governance_feed_run(*, sink: Sink, store: CursorStore, limit: int, batch_size: int | None = None) -> FeedRunResult:
    """Send up to ``limit`` events after the stored cursor to ``sink`` in batches, saving the cursor after each
    batch the sink accepted. A crash between a send and its cursor save re-sends that one batch next run (at least
    once; ``record_id`` lets the sink deduplicate); a refused batch stops the run with the cursor before it.

    Outside a transaction the next batch is read on a second connection while the sink takes the current one (the
    cursor still moves only after the sink accepted); inside one (a caller's ``atomic`` block) reads stay on the
    caller's connection, which alone sees its uncommitted rows."""
    batch_size = max(1, batch_size or settings.DOSSIER_FEED_BATCH_SIZE)
    start = store.load()
    result = FeedRunResult(start=start, state=start)
    rows = start.rows
    with _reader(prefetch=not connection.in_atomic_block) as read:
        batch = read(start.cursor, min(batch_size, limit))
        while batch:
            sent = result.exported + len(batch)
            following = read.ahead(batch[-1].sequence, min(batch_size, limit - sent)) if sent < limit else None
            try:
                sink.send(batch)
            except SinkRefused as exc:
                result.refused = str(exc)
                logger.warning(
                    "feed: the %s sink refused the batch after cursor %s: %s",
                    sink.name,
                    result.state.cursor,
                    exc,
                    extra={"error_code": "feed_sink_refused"},
                )
                break
            rows += len(batch)
            result.state = store.save(cursor=batch[-1].sequence, rows=rows)
            result.exported, result.batches = sent, result.batches + 1
            if result.first_sequence is None:
                result.first_sequence = batch[0].sequence
            result.last_sequence = batch[-1].sequence
            batch = following.result() if following is not None else []
    return result


class _Reader:
    """``read(cursor, n)`` now, or ``read.ahead(cursor, n)`` on the reader thread (a future), when there is one."""

    def __init__(self, pool: ThreadPoolExecutor | None) -> None:
        self.pool = pool

    def __call__(self, cursor: int, limit: int) -> list:
        return feed_records_after(cursor=cursor, limit=limit)

    def ahead(self, cursor: int, limit: int) -> Future:
        if self.pool is None:
            done: Future = Future()
            done.set_result(self(cursor, limit))
            return done
        return self.pool.submit(feed_records_after, cursor=cursor, limit=limit)


@contextmanager
def _reader(*, prefetch: bool) -> Iterator[_Reader]:
    if not prefetch:
        yield _Reader(None)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-reader")
    try:
        yield _Reader(pool)
    finally:
        pool.submit(connections.close_all).result()  # the reader thread's own connection
        pool.shutdown()


def scheduled_sink() -> Sink:
    """The scheduled run's sink: the webhook when ``DOSSIER_FEED_WEBHOOK_URL`` is set, else the feed file."""
    if settings.DOSSIER_FEED_WEBHOOK_URL:
        return webhook_sink(settings.DOSSIER_FEED_WEBHOOK_URL)
    return FileSink(settings.DOSSIER_FEED_FILE_PATH)


def webhook_sink(url: str) -> WebhookSink:
    return WebhookSink(
        url=url,
        secret=settings.DOSSIER_FEED_WEBHOOK_SECRET,
        attempts=settings.DOSSIER_FEED_WEBHOOK_ATTEMPTS,
        backoff_seconds=settings.DOSSIER_FEED_WEBHOOK_BACKOFF_SECONDS,
        timeout_seconds=settings.DOSSIER_FEED_WEBHOOK_TIMEOUT_SECONDS,
    )


def cursor_store(kind: str, path: str | None = None) -> CursorStore:
    return FileCursorStore(path or "") if kind == "file" else DbCursorStore()


def governance_feed_run_recorded(*, sink: Sink, limit: int, batch_size: int | None = None) -> FeedRunResult:
    """The operators' run (schedule, reports page, ``--cursor-store db``): the ``db`` cursor, under a lock so two
    runs never overlap (a PostgreSQL advisory lock), with its outcome kept for the reports page and ``/metrics``."""
    started = timezone.now()
    store = DbCursorStore()
    with job_lock(FEED_JOB) as held:
        if not held:
            state = store.load()
            logger.info("feed run skipped: another run holds the lock")
            return FeedRunResult(start=state, state=state, skipped=True)
        try:
            result = governance_feed_run(sink=sink, store=store, limit=limit, batch_size=batch_size)
        except Exception as exc:
            job_run_record(
                job=FEED_JOB, started_at=started, outcome=OUTCOME_ERROR, details={"sink": sink.name, "error": str(exc)}
            )
            raise
        job_run_record(
            job=FEED_JOB,
            started_at=started,
            outcome=result.outcome,
            rows=result.exported,
            details={
                "sink": sink.name,
                "cursor": result.state.cursor,
                "refused": result.refused,
                **_latest_chunk(result),
            },
        )
    return result


def _latest_chunk(result: FeedRunResult) -> dict:
    """The sequence range of the latest rows the feed delivered (kept from the run before when this one sent
    nothing), which the reports page offers as an NDJSON download."""
    if result.exported:
        return {"chunk_after": result.start.cursor, "chunk_until": result.last_sequence, "chunk_rows": result.exported}
    previous = ScheduledJobRun.objects.filter(job=FEED_JOB).values_list("details", flat=True).first() or {}
    return {key: previous[key] for key in ("chunk_after", "chunk_until", "chunk_rows") if key in previous}
