"""Object-level visibility: one queryset method restricts any team-owned object to its viewer's teams."""

from __future__ import annotations

from django.db import models


class TeamScopedQuerySet(models.QuerySet):
    """A queryset for models that belong to a team, directly or through a relation.

    The model names the path to its team in ``TEAM_LOOKUP`` (``"team"``, ``"execution__team"`` ...).
    Selectors start from ``visible_to(user)`` so that no view can forget the check: a foreign team's object is
    simply absent, which the API renders as 404.
    """

    def visible_to(self, user) -> TeamScopedQuerySet:
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        from governance.models import Membership

        return self.filter(
            **{f"{_team_id_lookup(self.model)}__in": Membership.objects.filter(user=user).values("team_id")}
        )

    def for_team(self, team_id: int) -> TeamScopedQuerySet:
        return self.filter(**{_team_id_lookup(self.model): team_id})


def _team_id_lookup(model: type[models.Model]) -> str:
    lookup = model.TEAM_LOOKUP  # type: ignore[attr-defined]  # declared by each team-scoped model
    return "id" if lookup == "id" else f"{lookup}_id"
