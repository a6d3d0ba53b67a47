"""Where feed batches go: stdout, an append-only file, or a webhook (docs/feed.md).

A sink's ``send`` returns only once the batch is accepted (written and flushed, or answered 2xx) and raises
``SinkRefused`` when it will not take it; the cursor moves only after ``send`` returned.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from exports.feed.records import FeedRecord

SIGNATURE_HEADER = "X-Dossier-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Answers worth another attempt: server errors, request timeout, rate limiting.
RETRYABLE_STATUSES = frozenset({408, 429})
MAX_BACKOFF_SECONDS = 60.0


class SinkRefused(Exception):
    """The sink did not accept a batch (after every retry); the cursor stays where it was."""


class Sink(Protocol):
    name: str

    def send(self, batch: Sequence[FeedRecord]) -> None: ...


def ndjson(batch: Sequence[FeedRecord]) -> bytes:
    return b"".join(record.data + b"\n" for record in batch)


class StreamSink:
    """NDJSON lines to an open stream (the command's stdout); bytes when it has a binary buffer."""

    name = "stdout"

    def __init__(self, stream: IO) -> None:
        self.stream = stream

    def send(self, batch: Sequence[FeedRecord]) -> None:
        buffer = getattr(self.stream, "buffer", None)
        if buffer is not None:
            self.stream.flush()
            buffer.write(ndjson(batch))
            buffer.flush()
        else:
            self.stream.write(ndjson(batch).decode())
            self.stream.flush()


class FileSink:
    """NDJSON lines appended to a file, flushed and fsynced before the batch counts as accepted."""

    name = "file"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, batch: Sequence[FeedRecord]) -> None:
        try:
            with self.path.open("ab") as handle:
                handle.write(ndjson(batch))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise SinkRefused(f"cannot append to {self.path}: {exc}") from exc


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, the value of ``X-Dossier-Signature``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def idempotency_key(batch: Sequence[FeedRecord]) -> str:
    """Stable for a batch: the same rows re-sent after a crash carry the same key."""
    return f"dossier-feed-{batch[0].sequence}-{batch[-1].sequence}"


@dataclass
class WebhookSink:
    """``POST {"events": [...]}``; retries 5xx, 408, 429, timeouts and connection errors with exponential backoff
    and jitter; any other answer, or the last failed attempt, refuses the batch."""

    url: str
    secret: str = ""
    attempts: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random
    name: str = "webhook"

    def body(self, batch: Sequence[FeedRecord]) -> bytes:
        return b'{"events":[' + b",".join(record.data for record in batch) + b"]}"

    def send(self, batch: Sequence[FeedRecord]) -> None:
        body = self.body(batch)
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: idempotency_key(batch)}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        last_error = ""
        for attempt in range(1, max(1, self.attempts) + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code not in RETRYABLE_STATUSES:
                    raise SinkRefused(f"the webhook refused the batch: {last_error}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last_error = str(getattr(exc, "reason", exc)) or type(exc).__name__
            if attempt < self.attempts:
                self.sleep(self.delay(attempt))
        raise SinkRefused(f"the webhook did not accept the batch after {self.attempts} attempts: {last_error}")

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: half of ``backoff * 2^(attempt-1)`` (capped) plus a random share of the
        other half, so waits grow and concurrent feeds do not retry in step."""
        ceiling = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * 2 ** (attempt - 1))
        return ceiling / 2 + self.jitter() * ceiling / 2
