"""Trusted time: RFC 3161 tokens over signature records, bundle tag manifests and audit checkpoints
(docs/trusted-time.md).

A request is a ``pending`` row written in the caller's transaction, so it commits or rolls back with its subject.
After commit the fetch task is dispatched through the outbox; it asks the configured TSAs in order
(``DOSSIER_TSA_URLS``), stores the reply when one is granted, and otherwise backs off and tries again on its
schedule. A TSA that is down
therefore never blocks signing or packaging: the token arrives when the TSA returns, and until then its absence
shows on the export page and in ``/metrics`` (``dossier_trusted_timestamps_pending``).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from governance.choices import TimestampStatus, TimestampSubject
from governance.models import OutboxMessage, TrustedTimestamp, TsaCertificate
from governance.outbox import outbox_handler_register
from governance.services.outbox import outbox_enqueue
from governance.tsa import TsaError, TsaReply, certificates_from_pem, timestamp_fetch

HANDLER_FETCH = "governance.fetch_timestamps"
MAX_BACKOFF = timedelta(hours=1)


def timestamps_enabled() -> bool:
    return bool(settings.DOSSIER_TSA_URLS)


@functools.cache
def _roots_from(path: str) -> tuple[x509.Certificate, ...]:
    return tuple(certificates_from_pem(Path(path).read_bytes())) if path else ()


def tsa_roots() -> tuple[x509.Certificate, ...]:
    """The configured trust anchors for TSA certificates (``DOSSIER_TSA_CA_FILE``); empty when unset."""
    return _roots_from(settings.DOSSIER_TSA_CA_FILE)


def _fetch_dispatch(message: OutboxMessage) -> None:
    """The outbox handler: send the fetch task (idempotent: a second run finds nothing due)."""
    from governance.tasks import fetch_timestamps  # the task module imports this one

    fetch_timestamps.delay()


def timestamp_handlers_register() -> None:
    outbox_handler_register(HANDLER_FETCH, _fetch_dispatch)


def timestamp_request(
    *, subject_type: TimestampSubject, subject_id: int, data: bytes, team_id: int | None
) -> TrustedTimestamp | None:
    """Ask for a token over ``data`` once the caller's transaction commits; None when trusted time is off."""
    if not timestamps_enabled():
        return None
    row, _ = TrustedTimestamp.objects.get_or_create(
        subject_type=subject_type,
        subject_id=subject_id,
        defaults={"subject_bytes": data, "subject_sha256": hashlib.sha256(data).hexdigest(), "team_id": team_id},
    )
    # Through the outbox: a broker outage delays the fetch task, never the caller (docs/architecture.md).
    outbox_enqueue(handler=HANDLER_FETCH, payload={"subject_type": subject_type, "subject_id": subject_id})
    return row


def timestamp_for(subject_type: TimestampSubject, subject_id: int) -> TrustedTimestamp | None:
    return TrustedTimestamp.objects.filter(subject_type=subject_type, subject_id=subject_id).first()


def timestamps_for(subject_type: TimestampSubject, subject_ids) -> dict[int, TrustedTimestamp]:
    rows = TrustedTimestamp.objects.filter(subject_type=subject_type, subject_id__in=list(subject_ids))
    return {row.subject_id: row for row in rows}


@dataclass
class FetchReport:
    granted: int = 0
    failed: int = 0


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=10 * 2 ** min(attempts, 12)), MAX_BACKOFF)


def _certificates_record(reply: TsaReply) -> None:
    for der in reply.certificates:
        certificate = x509.load_der_x509_certificate(der)
        TsaCertificate.objects.get_or_create(
            sha256=hashlib.sha256(der).hexdigest(),
            defaults={
                "subject": certificate.subject.rfc4514_string()[:500],
                "pem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            },
        )


def _claim_one(now) -> TrustedTimestamp | None:
    """Take one due row: its next attempt moves past the time a fetch can take, so other fetchers leave it alone
    while this one asks the TSAs outside any transaction (no row lock is held across network calls)."""
    claim = timedelta(seconds=settings.DOSSIER_TSA_TIMEOUT_SECONDS * max(len(settings.DOSSIER_TSA_URLS), 1) + 30)
    with transaction.atomic():
        row = (
            TrustedTimestamp.objects.select_for_update(skip_locked=True)
            .filter(status=TimestampStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .first()
        )
        if row is not None:
            row.next_attempt_at = timezone.now() + claim
            row.save(update_fields=["next_attempt_at"])
        return row


def _fetch_one(now) -> bool | None:
    """Fetch the token of one due row; None when no row is due, else whether it was granted."""
    row = _claim_one(now)
    if row is None:
        return None
    pending = TrustedTimestamp.objects.filter(pk=row.pk, status=TimestampStatus.PENDING)
    try:
        reply = timestamp_fetch(
            bytes(row.subject_bytes),
            settings.DOSSIER_TSA_URLS,
            timeout=settings.DOSSIER_TSA_TIMEOUT_SECONDS,
            roots=tsa_roots(),
        )
    except TsaError as exc:
        pending.update(
            attempts=row.attempts + 1,
            last_error=f"{exc.code}: {exc.message}"[:300],
            next_attempt_at=timezone.now() + _backoff(row.attempts + 1),
        )
        return False
    with transaction.atomic():
        pending.update(
            status=TimestampStatus.GRANTED,
            response=reply.response,
            tsa_url=reply.url,
            gen_time=reply.gen_time,
            serial_number=str(reply.serial_number),
            attempts=row.attempts + 1,
            last_error="",
            granted_at=timezone.now(),
        )
        _certificates_record(reply)
    return True


def timestamps_fetch_pending(*, limit: int = 200) -> FetchReport:
    """Fetch due tokens, one claimed row at a time (several workers share the work); at most ``limit`` tries."""
    report = FetchReport()
    if not timestamps_enabled():
        return report
    now = timezone.now()
    for _ in range(limit):
        outcome = _fetch_one(now)
        if outcome is None:
            break
        if outcome:
            report.granted += 1
        else:
            report.failed += 1
    return report


def tsa_certificates_pem() -> bytes:
    """Every certificate an offline ``openssl ts -verify -CAfile`` needs: the configured roots, then each TSA
    certificate seen in a granted token, each once."""
    seen: set[str] = set()
    parts: list[bytes] = []
    for certificate in tsa_roots():
        der = certificate.public_bytes(serialization.Encoding.DER)
        seen.add(hashlib.sha256(der).hexdigest())
        parts.append(certificate.public_bytes(serialization.Encoding.PEM))
    for row in TsaCertificate.objects.all():
        if row.sha256 not in seen:
            seen.add(row.sha256)
            parts.append(row.pem.encode())
    return b"".join(parts)


def timestamps_pending_counts() -> dict[str, int]:
    counts = dict.fromkeys(TimestampSubject.values, 0)
    rows = (
        TrustedTimestamp.objects.filter(status=TimestampStatus.PENDING)
        .values("subject_type")
        .annotate(pending=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["subject_type"]] = row["pending"]
    return counts
