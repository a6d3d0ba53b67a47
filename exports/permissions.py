"""Which roles may write what in an execution's team (reads need only a membership)."""

from governance.choices import RoleKey
from governance.permissions import require_team_role

__all__ = [
    "COACHING_ROLES",
    "EXECUTION_WRITERS",
    "HOLD_MANAGERS",
    "HOLD_READERS",
    "OVERRIDE_ROLES",
    "RETENTION_MANAGERS",
    "TEAM_DATA_EXPORT_ROLES",
    "TEAM_ERASURE_ROLES",
    "require_team_role",
]

EXECUTION_WRITERS = frozenset({RoleKey.SCIENTIST, RoleKey.PI, RoleKey.OPERATOR, RoleKey.ADMIN})
OVERRIDE_ROLES = frozenset({RoleKey.OPERATOR, RoleKey.ADMIN})
COACHING_ROLES = frozenset({RoleKey.REVIEWER, RoleKey.QA_APPROVER, RoleKey.PI, RoleKey.ADMIN})
# Records lifecycle (docs/records-lifecycle.md): who places and releases legal holds, who reads them, and who
# changes an export's retention date.
HOLD_MANAGERS = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN})
HOLD_READERS = HOLD_MANAGERS | {RoleKey.AUDITOR}
RETENTION_MANAGERS = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN})
# A team's whole record (docs/team-data.md): exported by these roles, erased by an admin of the team only.
TEAM_DATA_EXPORT_ROLES = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN, RoleKey.AUDITOR})
TEAM_ERASURE_ROLES = frozenset({RoleKey.ADMIN})
