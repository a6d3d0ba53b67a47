"""Clearance: the highest classification each member may read in a team (docs/clearance.md)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from config.errors import NotFound, ValidationFailed
from governance.choices import CLASSIFICATION_ORDER, DEFAULT_CLEARANCE, Classification, ClearancePolicy, RoleKey
from governance.models import Clearance, Team
from governance.permissions import require_team_role
from governance.services.audit import audit_record

CLEARANCE_MANAGERS = frozenset({RoleKey.ADMIN, RoleKey.COMPLIANCE})


def clearance_level(*, user, team_id: int) -> str:
    """``user``'s clearance in the team: their row, else ``DEFAULT_CLEARANCE`` (Internal)."""
    if user is None or not user.is_authenticated:
        return Classification.PUBLIC
    level = Clearance.objects.filter(user=user, team_id=team_id).values_list("level", flat=True).first()
    return level or DEFAULT_CLEARANCE


def clearance_covers(level: str, label: str) -> bool:
    """Whether a clearance of ``level`` reads something labelled ``label`` (an unknown label needs the highest)."""
    rank: dict[str, int] = {str(value): index for index, value in enumerate(CLASSIFICATION_ORDER)}
    return rank.get(level, -1) >= rank.get(label, len(CLASSIFICATION_ORDER) - 1)


def _member(*, team: Team, username: str):
    user = get_user_model().objects.filter(username=username, memberships__team=team).distinct().first()
    if user is None:
        raise NotFound(f"'{username}' is not a member of team '{team.slug}'.", code="member_not_found")
    return user


def clearance_get(*, team: Team, username: str, actor) -> dict:
    require_team_role(user=actor, team_id=team.pk, roles=CLEARANCE_MANAGERS, action="read clearances")
    user = _member(team=team, username=username)
    return {"team": team.slug, "username": user.username, "level": clearance_level(user=user, team_id=team.pk),
            "policy": team.clearance_policy}  # fmt: skip


@transaction.atomic
def clearance_set(*, team: Team, username: str, level: str, actor) -> dict:
    """Set a member's clearance in ``team`` (roles ``admin``, ``compliance``); audited as
    ``governance.clearance_changed`` with the old and new level."""
    if actor is not None:
        require_team_role(user=actor, team_id=team.pk, roles=CLEARANCE_MANAGERS, action="change clearances")
    if level not in Classification.values:
        raise ValidationFailed(
            f"Unknown clearance level '{level}'.",
            details={"level": [f"Choose one of {', '.join(CLASSIFICATION_ORDER)}."]},
        )
    user = _member(team=team, username=username)
    row = Clearance.objects.select_for_update().filter(user=user, team=team).first()
    before = row.level if row else DEFAULT_CLEARANCE
    if row is None:
        row = Clearance.objects.create(user=user, team=team, level=level)
    elif row.level != level:
        row.level = level
        row.save(update_fields=["level", "updated_at"])
    if before != level:
        audit_record(
            action="governance.clearance_changed",
            actor=actor,
            obj=row,
            team_id=team.pk,
            payload={"user_id": user.pk, "from": before, "to": level},
        )
    return {"team": team.slug, "username": user.username, "level": level, "policy": team.clearance_policy}


def clearance_policy_get(*, team: Team, actor) -> dict:
    require_team_role(user=actor, team_id=team.pk, roles=CLEARANCE_MANAGERS, action="read the clearance policy")
    return {"team": team.slug, "policy": team.clearance_policy}


@transaction.atomic
def clearance_policy_set(*, team: Team, policy: str, actor, check_role: bool = True) -> dict:
    """Set what ``team`` does above a member's clearance (``deny`` or ``redact``; roles ``admin``, ``compliance``);
    a change is audited as ``governance.clearance_policy_changed`` with the old and new policy."""
    if check_role:
        require_team_role(user=actor, team_id=team.pk, roles=CLEARANCE_MANAGERS, action="change the clearance policy")
    if policy not in ClearancePolicy.values:
        raise ValidationFailed(
            f"Unknown clearance policy '{policy}'.",
            details={"policy": [f"Choose one of {', '.join(ClearancePolicy.values)}."]},
        )
    locked = Team.objects.select_for_update().get(pk=team.pk)
    before = locked.clearance_policy
    if before != policy:
        locked.clearance_policy = policy
        locked.save(update_fields=["clearance_policy"])
        audit_record(
            action="governance.clearance_policy_changed",
            actor=actor,
            obj=locked,
            team_id=team.pk,
            payload={"from": before, "to": policy, "clearance_policy": policy},
        )
    team.clearance_policy = policy
    return {"team": team.slug, "policy": policy}
