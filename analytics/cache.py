"""Cached governance analytics: 30 seconds per viewer and team scope, invalidated by versioned keys.

Each team has a version number in the cache. A scope's key embeds the versions of its teams, read before the
figures are computed, so bumping one team's version (``analytics_invalidate``) makes every cached scope that
covers the team unreachable at once — no flush, no key scan — while other teams' entries stay warm. Orphaned
entries simply expire. A computation that races an invalidation stores its result under the old version, which
nobody reads any more.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from analytics.governance import AnalyticsScope, governance_analytics

KEY_PREFIX = "analytics:governance"


def _version_key(team_id: int) -> str:
    return f"{KEY_PREFIX}:team-version:{team_id}"


def team_versions(team_ids: list[int]) -> dict[int, int]:
    found = cache.get_many([_version_key(team_id) for team_id in team_ids])
    return {team_id: int(found.get(_version_key(team_id), 0)) for team_id in team_ids}


def analytics_invalidate(*, team_id: int) -> None:
    """Make every cached analytics scope covering ``team_id`` stale (atomic on Redis)."""
    key = _version_key(team_id)
    if cache.add(key, 1, timeout=None):
        return
    try:
        cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=None)


def scope_key(*, user_id: int | None, scope: AnalyticsScope, versions: dict[int, int], variant: str = "") -> str:
    parts = [f"u{user_id}", f"w{scope.window_days}", variant]
    parts += [f"{team_id}={versions[team_id]}" for team_id in sorted(versions)]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:scope:{digest}"


@dataclass(frozen=True)
class CachedAnalytics:
    data: dict[str, Any]
    hit: bool
    computed_at: datetime

    def cache_info(self, *, now: datetime | None = None) -> dict[str, Any]:
        now = now or timezone.now()
        return {
            "hit": self.hit,
            "computed_at": self.computed_at,
            "age_seconds": round(max(0.0, (now - self.computed_at).total_seconds()), 3),
            "ttl_seconds": settings.ANALYTICS_CACHE_SECONDS,
        }


def governance_analytics_cached(*, user, scope: AnalyticsScope) -> CachedAnalytics:
    """The analytics of ``scope`` for ``user``, from the cache when a fresh entry exists."""
    versions = team_versions(scope.team_ids)
    key = scope_key(user_id=getattr(user, "pk", None), scope=scope, versions=versions)
    entry = cache.get(key)
    if entry is not None:
        return CachedAnalytics(data=entry["data"], hit=True, computed_at=entry["computed_at"])
    now = timezone.now()
    data = governance_analytics(scope, now=now)
    cache.set(key, {"data": data, "computed_at": now}, timeout=settings.ANALYTICS_CACHE_SECONDS)
    return CachedAnalytics(data=data, hit=False, computed_at=now)
