"""Reads about teams, roles and who may act where."""

from django.db.models import QuerySet

from config.errors import NotFound
from governance.models import Membership, Team


def teams_for_user(*, user) -> QuerySet[Team]:
    return Team.objects.visible_to(user)


def team_get_for_user(*, user, slug: str) -> Team:
    team = teams_for_user(user=user).filter(slug=slug).first()
    if team is None:
        raise NotFound(f"No team '{slug}' among your teams.", code="team_not_found")
    return team


def user_roles_in_team(*, user, team_id: int) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(Membership.objects.filter(user=user, team_id=team_id).values_list("role__key", flat=True))


def user_has_role(*, user, team_id: int, roles: set[str] | frozenset[str]) -> bool:
    return bool(user_roles_in_team(user=user, team_id=team_id) & set(roles))


def user_holds_any_role(*, user, roles: set[str] | frozenset[str]) -> bool:
    """Whether ``user`` holds one of ``roles`` in at least one team."""
    if not user.is_authenticated:
        return False
    return Membership.objects.filter(user=user, role__key__in=roles).exists()


def users_with_role(*, team_id: int, role_key: str):
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(memberships__team_id=team_id, memberships__role__key=role_key, is_active=True)
        .distinct()
    )
