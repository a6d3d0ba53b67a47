"""Re-authentication at signing: the password check, failure counting and the lockout (SPEC §6)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.models import SignatureAttempt
from config.errors import DossierError
from config.passwords import password_verify
from exports.models import NarrativeExport
from governance.services.audit import audit_record

LOCKOUT_AUDIT_ACTION = "approvals.signer_locked_out"


class SignatureInvalid(DossierError):
    status_code = 403
    code = "signature_invalid"
    default_message = "The password does not match: the signature was not recorded."


class SignerLockedOut(DossierError):
    status_code = 403
    code = "signer_locked_out"
    default_message = "Too many failed signature attempts: signing is locked for a while."


def lockout_policy() -> tuple[int, timedelta]:
    return settings.APPROVALS_SIGNATURE_MAX_FAILURES, timedelta(minutes=settings.APPROVALS_SIGNATURE_WINDOW_MINUTES)


def recent_failures(*, user) -> list:
    limit, window = lockout_policy()
    return list(
        SignatureAttempt.objects.filter(user=user, succeeded=False, created_at__gte=timezone.now() - window)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )


def signer_lockout_check(*, user, export: NarrativeExport | None = None) -> None:
    """Refuse to sign, whatever the password, while the user has too many recent failures."""
    limit, window = lockout_policy()
    failures = recent_failures(user=user)
    if len(failures) >= limit:
        until = failures[-1] + window
        SignatureAttempt.objects.create(
            user=user, export=export, succeeded=False, refused_locked=True, created_at=timezone.now()
        )
        raise SignerLockedOut(
            f"{limit} failed signature attempts within {int(window.total_seconds() // 60)} minutes: "
            f"signing is locked until {until.isoformat()}.",
            details={"locked_until": until.isoformat().replace("+00:00", "Z")},
        )


def signer_verify(*, user, password: str, export: NarrativeExport | None = None) -> None:
    """The second component of the signature: the signer's own password, checked with Django's hasher.

    A failure is committed on its own (the caller's work is not), counted towards the lockout, and the failure
    that reaches the limit writes an audit event. Runs outside any ladder lock: hashing is slow on purpose (and
    runs at a lower CPU priority, see ``config.passwords``).
    """
    signer_lockout_check(user=user, export=export)
    if password and password_verify(user, password):
        return
    limit, window = lockout_policy()
    with transaction.atomic():
        SignatureAttempt.objects.create(
            user=user, export=export, succeeded=False, refused_locked=False, created_at=timezone.now()
        )
        count = len(recent_failures(user=user))
        if count >= limit:
            audit_record(
                action=LOCKOUT_AUDIT_ACTION,
                actor=user,
                obj=export,
                team_id=export.execution.team_id if export is not None else None,
                payload={"failures": count, "window_minutes": int(window.total_seconds() // 60)},
            )
    raise SignatureInvalid(details={"failures": count, "remaining_attempts": max(0, limit - count)})
