"""Which roles may write what in an execution's team (reads need only a membership)."""

from config.errors import PermissionDenied
from governance.choices import RoleKey
from governance.selectors.teams import user_has_role

EXECUTION_WRITERS = frozenset({RoleKey.SCIENTIST, RoleKey.PI, RoleKey.OPERATOR, RoleKey.ADMIN})
OVERRIDE_ROLES = frozenset({RoleKey.OPERATOR, RoleKey.ADMIN})
COACHING_ROLES = frozenset({RoleKey.REVIEWER, RoleKey.QA_APPROVER, RoleKey.PI, RoleKey.ADMIN})


def require_team_role(*, user, team_id: int, roles: frozenset[str], action: str) -> None:
    if not user_has_role(user=user, team_id=team_id, roles=roles):
        raise PermissionDenied(
            f"You need one of the roles {', '.join(sorted(roles))} in this team to {action}.",
            details={"required_roles": sorted(roles)},
        )
