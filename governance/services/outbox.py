"""The transactional outbox: side effects of a committed change, delivered after commit and never lost
(docs/architecture.md, "The outbox"; runbook in docs/operations.md).

A service that changes state and wants a side effect (send a task, invalidate a cache, send an e-mail) calls
:func:`outbox_enqueue` inside its transaction: the message row commits or rolls back with the change. Right after
commit the same process relays it (best effort: errors are logged, never raised to the request); whatever that
misses — the broker, the cache or the mail server is down, the process died — the periodic ``exports.relay_outbox``
task and ``manage.py relay_outbox`` deliver later. Delivery is at least once, so handlers are idempotent.

Claiming uses ``SELECT … FOR UPDATE SKIP LOCKED`` and moves the row's ``available_at`` past the claim period, so
concurrent relays never deliver one message at the same time, handlers run outside any transaction, and a relay
that dies mid-delivery only delays the message until its claim expires.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.core.mail.utils import DNS_NAME
from django.core.signals import request_finished, request_started
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from config.cache import cache_errors_raise
from governance.models import OutboxMessage
from governance.outbox import outbox_handler, outbox_handler_register
from governance.selectors.preferences import viewer_time_zone_cache_key
from governance.signals import team_state_changed

logger = logging.getLogger(__name__)

HANDLER_TEAM_STATE_CHANGED = "governance.team_state_changed"
HANDLER_TIME_ZONES_FORGET = "governance.viewer_time_zones_forget"
HANDLER_EMAIL = "governance.email"
DEDUPE_HEADER = "X-Dossier-Dedupe-Key"
_ERROR_CHARS = 2000
_PENDING_ATTRIBUTE = "dossier_outbox_after_commit"


@dataclass
class OutboxRelayReport:
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.delivered + self.failed


# --- Writing ----------------------------------------------------------------------------------------------------


def outbox_enqueue(*, handler: str, payload: dict[str, Any], dedupe_key: str = "") -> OutboxMessage:
    """Write a side effect in the current transaction; it is relayed right after commit (best effort) and by the
    periodic relay until delivered. ``handler`` must be registered (a typo fails here, not in the relay)."""
    outbox_handler(handler)
    message = OutboxMessage.objects.create(handler=handler, payload=payload, dedupe_key=dedupe_key)
    _relay_after_commit(message.pk)
    return message


def _relay_after_commit(message_id: int) -> None:
    """Relay the message once the transaction commits. Every message registers a callback, and the first one to
    run relays every message its connection wrote since, so one commit costs one relay pass however many
    messages it carries. Ids of rolled-back messages are simply not found."""
    connection = transaction.get_connection()
    pending: list[int] | None = getattr(connection, _PENDING_ATTRIBUTE, None)
    if pending is None:
        pending = []
        setattr(connection, _PENDING_ATTRIBUTE, pending)
    pending.append(message_id)
    transaction.on_commit(partial(_relay_pending, pending))


# Ids committed while a request is being answered, relayed once its response has been sent (None: relay at once).
_AFTER_RESPONSE: ContextVar[list[int] | None] = ContextVar("dossier_outbox_after_response", default=None)


def _relay_pending(pending: list[int]) -> None:
    ids = pending[:]
    del pending[:]
    if not ids:
        return
    after_response = _AFTER_RESPONSE.get()
    if after_response is not None:
        after_response.extend(ids)
        return
    _relay_ids(ids)


def _relay_ids(ids: list[int]) -> None:
    try:
        outbox_relay(ids=ids)
    except Exception:  # the change committed: its answer must not fail; the periodic relay delivers later
        logger.exception("outbox messages %s were not relayed after commit; the periodic relay will retry", ids)


def outbox_request_started(**kwargs) -> None:
    """``request_started``: with ``DOSSIER_OUTBOX_RELAY_AFTER_RESPONSE``, the messages this request commits are
    relayed once its response has been sent (``outbox_request_finished``), by the same thread before it takes the
    next request: the client does not wait for the broker, the cache or the mail server, nor for the relay's own
    bookkeeping. Messages left by a response that was never closed are relayed first."""
    leftover = _AFTER_RESPONSE.get()
    _AFTER_RESPONSE.set([] if settings.DOSSIER_OUTBOX_RELAY_AFTER_RESPONSE else None)
    if leftover:
        _relay_ids(leftover)


def outbox_request_finished(**kwargs) -> None:
    """``request_finished`` (sent when the server closes the response, after sending it): relay what the request
    committed. A process that dies in between leaves the messages to the periodic relay, like any relay failure."""
    ids = _AFTER_RESPONSE.get()
    _AFTER_RESPONSE.set(None)
    if ids:
        _relay_ids(ids)


def team_state_announce(*, team_id: int, execution_id: int | None, reason: str) -> None:
    """Send ``governance.signals.team_state_changed`` once the transaction commits, through the outbox (analytics
    invalidates its caches on it; a cache outage delays the invalidation, never loses it)."""
    outbox_enqueue(
        handler=HANDLER_TEAM_STATE_CHANGED,
        payload={"team_id": team_id, "execution_id": execution_id, "reason": reason},
    )


def viewer_time_zones_forget(*, user_ids: Iterable[int]) -> None:
    """Drop the cached page time zones of ``user_ids`` once the transaction commits (docs/pages.md)."""
    ids = sorted(set(user_ids))
    if ids:
        outbox_enqueue(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": ids})


def email_enqueue(*, subject: str, body: str, to: list[str], dedupe_key: str) -> OutboxMessage:
    """Send an e-mail once the transaction commits. ``dedupe_key`` names it: once a message with that key was
    delivered, another with the same key is not sent again, and the mail carries the key (``X-Dossier-Dedupe-Key``
    and a Message-ID derived from it) so a mail system can drop a copy that a relay crash re-sent."""
    return outbox_enqueue(
        handler=HANDLER_EMAIL,
        payload={"subject": subject, "body": body, "to": sorted(set(to))},
        dedupe_key=dedupe_key,
    )


# --- Relaying ---------------------------------------------------------------------------------------------------


def outbox_relay(
    *,
    ids: list[int] | None = None,
    limit: int | None = None,
    progress: Callable[[OutboxRelayReport], None] | None = None,
) -> OutboxRelayReport:
    """Deliver pending messages that are due (only ``ids`` when given), at most ``limit``
    (``DOSSIER_OUTBOX_RELAY_LIMIT``) in one run, in batches; ``progress`` is called after each batch."""
    report = OutboxRelayReport()
    remaining = limit if limit is not None else settings.DOSSIER_OUTBOX_RELAY_LIMIT
    while remaining > 0:
        batch = _claim(ids=ids, limit=min(remaining, settings.DOSSIER_OUTBOX_BATCH_SIZE))
        _deliver_batch(batch, report)
        if progress is not None and batch:
            progress(report)
        remaining -= len(batch)
        if len(batch) < settings.DOSSIER_OUTBOX_BATCH_SIZE:
            break
    return report


@contextmanager
def _bookkeeping() -> Iterator[None]:
    """A transaction for the relay's own rows. Its commit need not wait for the disk: losing a claim or a delivery
    mark to a server crash only means a message is delivered again, which every handler tolerates."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def _claim(*, ids: list[int] | None, limit: int) -> list[OutboxMessage]:
    now = timezone.now()
    with _bookkeeping():
        due = OutboxMessage.objects.filter(delivered_at__isnull=True, available_at__lte=now)
        if ids is not None:
            due = due.filter(pk__in=ids)
        batch = list(due.select_for_update(skip_locked=True).order_by("id")[:limit])
        if batch:
            claimed_until = now + timedelta(seconds=settings.DOSSIER_OUTBOX_CLAIM_SECONDS)
            OutboxMessage.objects.filter(pk__in=[message.pk for message in batch]).update(available_at=claimed_until)
    return batch


def _deliver_batch(batch: list[OutboxMessage], report: OutboxRelayReport) -> None:
    """Run each message's handler; a message whose ``dedupe_key`` was already delivered (earlier, or earlier in
    this batch) is done without running it again. Deliveries are recorded together at the end of the batch."""
    delivered: list[int] = []
    keys_done: set[str] = set()
    for message in batch:
        key = message.dedupe_key
        if key and (key in keys_done or _key_delivered(message)):
            logger.info("outbox message %s: %s was already delivered; not repeated", message.pk, key)
        elif not _deliver(message, report):
            continue
        delivered.append(message.pk)
        keys_done.add(key)
    if delivered:
        with _bookkeeping():
            OutboxMessage.objects.filter(pk__in=delivered).update(
                attempts=F("attempts") + 1, last_error="", delivered_at=timezone.now()
            )
    report.delivered += len(delivered)


def _key_delivered(message: OutboxMessage) -> bool:
    return (
        OutboxMessage.objects.filter(dedupe_key=message.dedupe_key, delivered_at__isnull=False)
        .exclude(pk=message.pk)
        .exists()
    )


def _deliver(message: OutboxMessage, report: OutboxRelayReport) -> bool:
    try:
        with cache_errors_raise():  # an invalidation that fails is retried, not dropped (config/cache.py)
            outbox_handler(message.handler)(message)
    except Exception as exc:  # every failure is recorded on the row and retried with backoff
        error = f"{exc.__class__.__name__}: {exc}"[:_ERROR_CHARS]
        attempts = message.attempts + 1
        OutboxMessage.objects.filter(pk=message.pk).update(
            attempts=attempts, last_error=error, available_at=timezone.now() + outbox_backoff(attempts)
        )
        logger.warning(
            "outbox message %s (%s) failed, attempt %s: %s",
            message.pk,
            message.handler,
            attempts,
            error,
            extra={"outbox_message": message.pk, "outbox_handler": message.handler, "attempts": attempts},
        )
        report.failed += 1
        report.errors.append(f"#{message.pk} {message.handler}: {error}")
        return False
    return True


def outbox_backoff(attempts: int) -> timedelta:
    """How long a message waits after its ``attempts``-th failed delivery: doubling, capped."""
    base = settings.DOSSIER_OUTBOX_BACKOFF_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), settings.DOSSIER_OUTBOX_BACKOFF_MAX_SECONDS))


def outbox_prune(*, now: datetime | None = None) -> int:
    """Delete messages delivered more than ``DOSSIER_OUTBOX_RETAIN_DAYS`` ago (the e-mail dedupe window)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.DOSSIER_OUTBOX_RETAIN_DAYS)
    deleted, _ = OutboxMessage.objects.filter(delivered_at__lt=cutoff).delete()
    return deleted


@dataclass
class OutboxRunReport:
    relay: OutboxRelayReport
    pruned: int
    housekeeping_failed: list[str]


def outbox_run(*, progress: Callable[[OutboxRelayReport], None] | None = None) -> OutboxRunReport:
    """One run of the periodic relay: deliver what is due, prune old deliveries, then call each housekeeping
    callable of ``DOSSIER_OUTBOX_AFTER_RELAY`` (the extension point for work that must happen within seconds of a
    failure, like taking over dead packaging leases); a failing one is logged and named in the report."""
    relay = outbox_relay(progress=progress)
    pruned = outbox_prune()
    failed = []
    for path in settings.DOSSIER_OUTBOX_AFTER_RELAY:
        try:
            import_string(path)()
        except Exception:  # one broken housekeeping step must not stop the others or the next relay
            logger.exception("outbox housekeeping %s failed", path)
            failed.append(path)
    return OutboxRunReport(relay=relay, pruned=pruned, housekeeping_failed=failed)


# --- Governance's handlers --------------------------------------------------------------------------------------


def _team_state_changed(message: OutboxMessage) -> None:
    payload = message.payload
    team_state_changed.send(
        sender=OutboxMessage,
        team_id=payload["team_id"],
        execution_id=payload.get("execution_id"),
        reason=payload.get("reason", ""),
    )


def _time_zones_forget(message: OutboxMessage) -> None:
    cache.delete_many([viewer_time_zone_cache_key(user_id) for user_id in message.payload["user_ids"]])


def _email_send(message: OutboxMessage) -> None:
    key = message.dedupe_key  # the relay does not run this again once a message with the key was delivered
    headers = {DEDUPE_HEADER: key} if key else {}
    if key:
        headers["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{DNS_NAME}>"
    payload = message.payload
    EmailMessage(subject=payload["subject"], body=payload["body"], to=payload["to"], headers=headers).send()


def outbox_request_signals_connect() -> None:
    request_started.connect(outbox_request_started, dispatch_uid="governance.outbox.request_started")
    request_finished.connect(outbox_request_finished, dispatch_uid="governance.outbox.request_finished")


def outbox_handlers_register() -> None:
    outbox_handler_register(HANDLER_TEAM_STATE_CHANGED, _team_state_changed)
    outbox_handler_register(HANDLER_TIME_ZONES_FORGET, _time_zones_forget)
    outbox_handler_register(HANDLER_EMAIL, _email_send)
