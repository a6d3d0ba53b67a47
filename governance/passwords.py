"""Password aging and reuse (21 CFR 11.300(b), docs/authentication.md "Password aging and reuse").

``PasswordHistoryValidator`` is a Django password validator: every path that validates a new password
(the password-change page and API, the admin's forms, ``manage.py changepassword``) refuses one of the user's last
``DOSSIER_PASSWORD_HISTORY`` passwords. Django calls its ``password_changed`` after every saved password change,
which is where the new hash is kept (and older ones beyond the limit dropped).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.utils import timezone

from governance.models import PasswordHistoryEntry, PasswordState


def password_history_size() -> int:
    return max(0, int(settings.DOSSIER_PASSWORD_HISTORY))


class PasswordHistoryValidator:
    """Refuses the user's last ``DOSSIER_PASSWORD_HISTORY`` passwords (0: reuse allowed)."""

    def validate(self, password: str, user=None) -> None:
        size = password_history_size()
        if not size or user is None or user.pk is None:
            return
        hashes = PasswordHistoryEntry.objects.filter(user_id=user.pk).values_list("password", flat=True)[:size]
        if any(check_password(password, stored) for stored in hashes):
            raise ValidationError(
                f"This password was one of your last {size}; choose one you have not used before.",
                code="password_reused",
            )

    def password_changed(self, password: str, user=None) -> None:
        if user is None or user.pk is None:
            return
        size = password_history_size()
        if size:
            PasswordHistoryEntry.objects.create(user_id=user.pk, password=user.password, created_at=timezone.now())
        keep = PasswordHistoryEntry.objects.filter(user_id=user.pk).values_list("pk", flat=True)[:size]
        PasswordHistoryEntry.objects.filter(user_id=user.pk).exclude(pk__in=list(keep)).delete()

    def get_help_text(self) -> str:
        size = password_history_size()
        return f"Your password cannot be one of your last {size}." if size else ""


def password_changed_record(*, user, now: datetime | None = None) -> None:
    """Record that ``user``'s password was set now (called for every saved password change)."""
    PasswordState.objects.update_or_create(user_id=user.pk, defaults={"password_changed_at": now or timezone.now()})


def password_max_age() -> timedelta | None:
    days = int(settings.DOSSIER_PASSWORD_MAX_AGE_DAYS or 0)
    return timedelta(days=days) if days > 0 else None


def password_changed_at(*, user) -> datetime:
    """When ``user``'s password was last set: the recorded time, or when the account was created."""
    state = PasswordState.objects.filter(user_id=user.pk).values_list("password_changed_at", flat=True).first()
    return state or user.date_joined


def password_expired(*, user, now: datetime | None = None) -> bool:
    """Whether ``user`` must change their password before anything else (``DOSSIER_PASSWORD_MAX_AGE_DAYS``)."""
    max_age = password_max_age()
    if max_age is None or user is None or not user.is_authenticated:
        return False
    return password_changed_at(user=user) + max_age <= (now or timezone.now())
