"""Re-authentication at signing: the password check, failure counting and the lockout (docs/authentication.md, "The
signing lockout").

The lockout counts only the signer's own signing attempts: APPROVALS_SIGNATURE_MAX_FAILURES failed password
checks within APPROVALS_SIGNATURE_WINDOW_MINUTES lock signing until the oldest of them leaves the window. Sign-in
failures (governance/services/login_guard.py) never count here, so nobody can lock another user out of signing.

Counting is atomic: an attempt is admitted under a lock on the signer's ``SigningGuard`` row, and admitting it
writes its ``SignatureAttempt`` row at once, counted as a failure until the (slow, unlocked) password check says
otherwise. However many attempts arrive together, at most the limit reach the password hasher; the others are
refused as locked. Refused attempts are recorded but never counted, so they cannot move the end of the lock.
See docs/authentication.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from approvals.models import SignatureAttempt, SigningGuard
from config.errors import DossierError
from config.humanize import duration_in_words, until_in_words
from config.passwords import PasswordCheckBusy, password_verify
from exports.models import NarrativeExport
from governance.choices import RoleKey
from governance.models import Membership
from governance.services.audit import audit_record
from governance.services.outbox import email_enqueue
from textpolicy import inert_line
from textpolicy.utc import utc_iso

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class SigningStatus:
    """The signer's standing against the lockout: counted attempts in the window, and the lock's end if locked."""

    failures: int
    limit: int
    locked_until: datetime | None

    @property
    def remaining_attempts(self) -> int:
        return max(0, self.limit - self.failures)

    def details(self) -> dict:
        until = utc_iso(self.locked_until)
        return {"failures": self.failures, "remaining_attempts": self.remaining_attempts, "locked_until": until}


def signing_status(*, user, now: datetime | None = None) -> SigningStatus:
    """Failed and still-running password checks of ``user`` in the window (refused attempts excluded)."""
    limit, window = lockout_policy()
    now = now or timezone.now()
    counted = list(
        SignatureAttempt.objects.filter(user=user, refused_locked=False, created_at__gte=now - window)
        .exclude(succeeded=True)
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)[:limit]
    )
    locked_until = counted[-1] + window if len(counted) >= limit else None
    return SigningStatus(failures=len(counted), limit=limit, locked_until=locked_until)


def _guard_lock(user) -> None:
    """Lock the signer's guard row until the end of the transaction (created on first use)."""
    if SigningGuard.objects.select_for_update().filter(pk=user.pk).exists():
        return
    SigningGuard.objects.bulk_create([SigningGuard(user_id=user.pk)], ignore_conflicts=True)
    SigningGuard.objects.select_for_update().filter(pk=user.pk).exists()


def _locked_out(status: SigningStatus, *, now: datetime) -> SignerLockedOut:
    _, window = lockout_policy()
    return SignerLockedOut(
        f"{status.limit} failed signature attempts within {duration_in_words(window.total_seconds())}: "
        f"signing is locked until {until_in_words(status.locked_until or now, now=now)}.",
        details=status.details(),
    )


def signer_attempt_admit(*, user, export: NarrativeExport | None = None) -> SignatureAttempt:
    """Reserve one password check for ``user``, or raise SignerLockedOut (the refusal is recorded, not counted)."""
    with transaction.atomic():
        _guard_lock(user)
        now = timezone.now()
        status = signing_status(user=user, now=now)
        locked = status.locked_until is not None
        attempt = SignatureAttempt.objects.create(
            user=user, export=export, succeeded=False if locked else None, refused_locked=locked, created_at=now
        )
    if locked:
        raise _locked_out(status, now=now)
    return attempt


def signer_attempt_record(
    *, attempt: SignatureAttempt, succeeded: bool, export: NarrativeExport | None, team_id: int | None = None
) -> None:
    """Settle a reserved attempt. The failure that completes the limit writes the lockout audit event and, after
    commit, e-mails the compliance members of the team signed in (once per lock: until the lock ends no further
    attempt is admitted); the refusal says what remains."""
    if succeeded:
        SignatureAttempt.objects.filter(pk=attempt.pk).update(succeeded=True)
        return
    user = attempt.user
    with transaction.atomic():
        _guard_lock(user)
        SignatureAttempt.objects.filter(pk=attempt.pk).update(succeeded=False)
        now = timezone.now()
        status = signing_status(user=user, now=now)
        _, window = lockout_policy()
        settled = (
            SignatureAttempt.objects.filter(
                user=user, refused_locked=False, succeeded=False, created_at__gte=now - window
            ).count()
            if status.locked_until is not None
            else 0
        )
        if settled == status.limit:
            team_id = export.execution.team_id if export is not None else team_id
            audit_record(
                action=LOCKOUT_AUDIT_ACTION,
                actor=user,
                obj=export,
                team_id=team_id,
                payload={"failures": settled, "window_minutes": int(window.total_seconds() // 60)},
            )
            _lockout_notify(user=user, team_id=team_id, status=status, export=export, now=now)
    message = SignatureInvalid.default_message
    if status.locked_until is not None:
        message += f" Signing is now locked until {until_in_words(status.locked_until, now=now)}."
    else:
        left = status.remaining_attempts
        message += (
            f" {left} attempt{'s' if left != 1 else ''} left before signing is locked for "
            f"{duration_in_words(window.total_seconds())}."
        )
    raise SignatureInvalid(message, details=status.details())


def signer_verify(
    *,
    user,
    password: str,
    export: NarrativeExport | None = None,
    username: str | None = None,
    team_id: int | None = None,
) -> None:
    """The signature's components: the signer's own password, checked with Django's hasher, and, when given, their
    username (a wrong one fails the attempt like a wrong password, docs/part11.md).

    Admission and the outcome are each committed on their own (the caller's work is not), and the hash runs
    between them outside every lock: hashing is slow on purpose (and runs at a lower CPU priority, see
    ``config.passwords``).
    """
    attempt = signer_attempt_admit(user=user, export=export)
    attempt.user = user
    named = not username or username == user.get_username()
    try:
        succeeded = bool(password) and password_verify(user, password) and named
    except PasswordCheckBusy:  # 503 busy: the password was never checked, so the reservation goes
        SignatureAttempt.objects.filter(pk=attempt.pk).delete()
        raise
    signer_attempt_record(attempt=attempt, succeeded=succeeded, export=export, team_id=team_id)


def _lockout_recipients(*, user, team_id: int | None) -> list[str]:
    """The compliance members of the team signed in (of every team of the signer when no team is known)."""
    teams = [team_id] if team_id is not None else Membership.objects.filter(user=user).values("team_id")
    return sorted(
        set(
            Membership.objects.filter(team_id__in=teams, role__key=RoleKey.COMPLIANCE, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


def _lockout_notice(
    *, user, team_id: int | None, status: SigningStatus, export: NarrativeExport | None, now: datetime
) -> EmailMessage | None:
    """The message telling the compliance members at once that a signer was locked out of signing."""
    to = _lockout_recipients(user=user, team_id=team_id)
    if not to:
        return None
    name = inert_line(user.get_username())
    lines = [
        f"Signing is locked for user {name} ({inert_line(user.get_full_name()) or 'no name'}) after {status.limit} "
        f"failed signature attempts within {duration_in_words(lockout_policy()[1].total_seconds())}.",
        f"Locked at {utc_iso(now)} until {utc_iso(status.locked_until)}.",
    ]
    if export is not None:
        lines.append(f"Last attempt: export {export.pk} v{export.version}.")
    lines.append(f"The lockout is in the audit trail ({LOCKOUT_AUDIT_ACTION}); see docs/authentication.md.")
    subject = f"[Dossier] Signing lockout: {name}"
    return EmailMessage(subject=subject, body="\n".join(lines) + "\n", to=to)


def _lockout_notify(
    *, user, team_id: int | None, status: SigningStatus, export: NarrativeExport | None, now: datetime
) -> None:
    """Queue the lockout e-mail in the lockout's transaction: the outbox sends it right after commit and keeps
    retrying while the mail server is down (docs/architecture.md, "The outbox"); one e-mail per lock."""
    notice = _lockout_notice(user=user, team_id=team_id, status=status, export=export, now=now)
    if notice is None:
        return
    email_enqueue(
        subject=str(notice.subject),
        body=str(notice.body),
        to=list(notice.to),
        dedupe_key=f"signing-lockout:{user.pk}:{utc_iso(status.locked_until)}",
    )
