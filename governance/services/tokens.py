"""API tokens: issued for a username and password behind the shared guessing limit, expiring after
DOSSIER_TOKEN_TTL_HOURS, stored only as digests (django-rest-knox), revocable. See docs/authentication.md."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from config.errors import NotAuthenticated
from governance.services.audit import audit_record
from governance.services.login_guard import password_authenticate

TOKENS_REVOKED_AUDIT_ACTION = "governance.api_tokens_revoked"


def token_issue(*, request, username: str, password: str) -> tuple[AuthToken, str]:
    """A new token for the user the credentials name: (its row, the token text shown once)."""
    user = password_authenticate(request=request, username=username, password=password)
    if user is None or not user.is_active:
        raise NotAuthenticated("Unknown username or wrong password.", code="invalid_credentials")
    now = timezone.now()
    AuthToken.objects.filter(user=user, expiry__lt=now).delete()
    return AuthToken.objects.create(user=user, expiry=timedelta(hours=settings.DOSSIER_TOKEN_TTL_HOURS))


def token_revoke(*, token: AuthToken) -> None:
    """Log one token out (POST /api/auth/logout)."""
    AuthToken.objects.filter(pk=token.pk).delete()


@transaction.atomic
def tokens_revoke_for_user(*, user, reason: str) -> int:
    """Revoke every token of ``user`` (password changed, last membership lost); audited when any existed."""
    count, _ = AuthToken.objects.filter(user=user).delete()
    if count:
        audit_record(
            action=TOKENS_REVOKED_AUDIT_ACTION,
            actor=None,
            obj=user,
            payload={"cause": reason, "tokens": count},
            object_type="user",
            object_id=str(user.pk),
        )
    return count
