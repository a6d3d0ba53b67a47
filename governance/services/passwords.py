"""Changing one's own password (docs/authentication.md, "Password aging and reuse")."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from config.errors import PermissionDenied, ValidationFailed
from governance.services.audit import audit_record
from governance.services.login_guard import password_authenticate

PASSWORD_CHANGED_AUDIT_ACTION = "governance.password_changed"  # noqa: S105  # an audit action, not a secret


def password_change(*, request, user, old_password: str, new_password: str, via: str = "api") -> None:
    """Set ``user``'s new password after checking the current one (behind the shared guessing limit) and the
    validators (length, common passwords, the last ``DOSSIER_PASSWORD_HISTORY``). Every API token of the user is
    revoked by the change (governance/receivers.py)."""
    if password_authenticate(request=request, username=user.get_username(), password=old_password) is None:
        raise PermissionDenied(  # a failed re-authentication, like a wrong signing password: 403
            "The current password does not match.",
            code="invalid_password",
            details={"old_password": ["Does not match your current password."]},
        )
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        raise ValidationFailed(
            "The new password was refused: " + " ".join(exc.messages),
            code="password_refused",
            details={"new_password": list(exc.messages)},
        ) from None
    with transaction.atomic():
        user.set_password(new_password)
        user.save()
        audit_record(
            action=PASSWORD_CHANGED_AUDIT_ACTION,
            actor=user,
            obj=user,
            payload={"via": via},
            object_type="user",
            object_id=str(user.pk),
        )
