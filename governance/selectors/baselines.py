"""Reads for baselines, restricted to the viewer's teams first (a foreign team's baseline is a 404)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from config.errors import NotFound
from governance.filtersets import BaselineFilterSet, filtered
from governance.models import GovernanceBaseline, GovernanceBaselineEvent


def _base(user) -> QuerySet[GovernanceBaseline]:
    return (
        GovernanceBaseline.objects.visible_to(user)
        .select_related("team", "submitted_by", "reviewed_by", "published_by", "rolled_back_by")
        .prefetch_related("reviewers")
    )


def baselines_for_user(*, user, filters: Any = None) -> QuerySet[GovernanceBaseline]:
    return filtered(BaselineFilterSet, filters, _base(user).order_by("-id"))


def baseline_get_for_user(*, user, baseline_id: int) -> GovernanceBaseline:
    events = GovernanceBaselineEvent.objects.select_related("actor").order_by("id")
    baseline = _base(user).prefetch_related(Prefetch("events", queryset=events)).filter(pk=baseline_id).first()
    if baseline is None:
        raise NotFound(f"Baseline {baseline_id} was not found.", code="baseline_not_found")
    return baseline


def baseline_current(*, team_id: int, protocol_template_key: str) -> GovernanceBaseline | None:
    """The baseline in force for a team's protocol template, if any (for the exports and approvals apps)."""
    return GovernanceBaseline.objects.filter(
        team_id=team_id, protocol_template_key=protocol_template_key, is_current=True
    ).first()
