"""Receivers: analytics listens to the lower apps' extension signals (they never import us)."""

from __future__ import annotations

from analytics.cache import analytics_invalidate


def team_state_changed_receiver(sender, *, team_id: int | None = None, **kwargs) -> None:
    """governance.signals.team_state_changed is sent on commit by timeline appends (events, overrides, coaching
    notes, lifecycle steps) and by every ladder action (approve, reject, delegate, reset, monitor markers)."""
    if team_id is not None:
        analytics_invalidate(team_id=team_id)
