"""Who may do what in governance: template curation and the baseline lifecycle (docs/teams-and-roles.md,
docs/templates-and-baselines.md)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from config.errors import PermissionDenied
from governance.choices import RoleKey
from governance.models import Membership
from governance.passwords import password_expired
from governance.selectors.teams import user_has_role

# A template belongs to a team (curated by holders of these roles in that team) or to the platform (curated by
# superusers only). Everyone reads platform templates and those of their own teams.
TEMPLATE_CURATORS = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN})

BASELINE_SUBMITTERS = frozenset({RoleKey.SCIENTIST, RoleKey.PI})
BASELINE_REVIEWERS = frozenset({RoleKey.REVIEWER})
BASELINE_PUBLISHERS = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN})
BASELINE_ROLLBACK = frozenset({RoleKey.ADMIN})


def require_team_role(*, user, team_id: int, roles: frozenset[str], action: str) -> None:
    if not user_has_role(user=user, team_id=team_id, roles=roles):
        raise PermissionDenied(
            f"You need one of the roles {', '.join(sorted(roles))} in this team to {action}.",
            details={"required_roles": sorted(roles)},
        )


def _active(user) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def curated_team_ids(user) -> set[int]:
    """Teams where ``user`` holds ``compliance`` or ``admin``."""
    if not _active(user):
        return set()
    return set(Membership.objects.filter(user=user, role__key__in=TEMPLATE_CURATORS).values_list("team_id", flat=True))


def is_template_curator(user) -> bool:
    """May curate somewhere: a superuser, or ``compliance``/``admin`` in at least one team."""
    return _active(user) and (user.is_superuser or bool(curated_team_ids(user)))


def can_curate_templates_of(user, *, team_id: int | None) -> bool:
    """May change templates and assignments owned by ``team_id`` (``None``: the platform, superusers only)."""
    if not _active(user):
        return False
    if user.is_superuser:
        return True
    return team_id is not None and team_id in curated_team_ids(user)


def require_template_curator(*, actor, team_id: int | None, action: str = "change workflow templates") -> None:
    """Refuse unless ``actor`` curates ``team_id``'s templates (``None``: platform templates, superusers only).

    ``actor=None`` is the system itself (data migrations, ``seed_demo``) and is always allowed.
    """
    if actor is None or can_curate_templates_of(actor, team_id=team_id):
        return
    if team_id is None:
        raise PermissionDenied(
            f"Platform templates are curated by superusers only; you may not {action} here.",
            code="permission_denied",
            details={"required": "superuser"},
        )
    raise PermissionDenied(
        f"You need the role compliance or admin in this team to {action}.",
        code="permission_denied",
        details={"required_roles": sorted(TEMPLATE_CURATORS)},
    )


class PasswordExpired(PermissionDenied):
    code = "password_expired"
    default_message = (
        "Your password is older than the permitted age: change it (POST /api/auth/password or /accounts/password/) "
        "before anything else."
    )


class PasswordCurrent(BasePermission):
    """API requests of a user whose password has aged out are refused with 403 ``password_expired``
    (docs/authentication.md); the password change and logout endpoints name ``IsAuthenticated`` alone."""

    def has_permission(self, request, view) -> bool:
        if password_expired(user=request.user):
            raise PasswordExpired()
        return True
