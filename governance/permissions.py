"""Who may do what in governance: template curation and the baseline lifecycle (SPEC §2, §7)."""

from __future__ import annotations

from config.errors import PermissionDenied
from governance.choices import RoleKey
from governance.models import Membership
from governance.selectors.teams import user_has_role

# Templates are shared by every team; changing one needs one of these roles in at least one team (or, for a team
# assignment, in that team). Everyone authenticated may read them.
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


def is_template_curator(user, *, team_id: int | None = None) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    memberships = Membership.objects.filter(user=user, role__key__in=TEMPLATE_CURATORS)
    if team_id is not None:
        memberships = memberships.filter(team_id=team_id)
    return memberships.exists()


def require_template_curator(*, actor, team_id: int | None = None, action: str = "change workflow templates") -> None:
    """Refuse unless ``actor`` holds compliance or admin (in ``team_id`` when given).

    ``actor=None`` is the system itself (data migrations, ``seed_demo``) and is always allowed.
    """
    if actor is None or is_template_curator(actor, team_id=team_id):
        return
    where = "in this team" if team_id is not None else "in one of your teams"
    raise PermissionDenied(
        f"You need the role compliance or admin {where} to {action}.",
        code="permission_denied",
        details={"required_roles": sorted(TEMPLATE_CURATORS)},
    )
