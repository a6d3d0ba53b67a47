"""Which time zone a viewer's pages show (docs/pages.md): their own choice, else their team's, else UTC."""

from __future__ import annotations

from django.core.cache import cache

from governance.models import Team, UserPreference

# Read on every page: resolved when the user signs in, kept in the cache and dropped when a preference, a team's
# zone or a membership changes.
CACHE_SECONDS = 3600


def viewer_time_zone_cache_key(user_id: int) -> str:
    return f"viewer-time-zone:{user_id}"


def viewer_time_zone(*, user) -> str:
    """The IANA zone the user's pages show: the preference they set, else the zone of their first team (by slug),
    else ``UTC``."""
    if not user.is_authenticated:
        return "UTC"
    zone = cache.get(viewer_time_zone_cache_key(user.pk))
    return zone if zone is not None else viewer_time_zone_refresh(user=user)


def viewer_time_zone_refresh(*, user) -> str:
    """Resolve the user's zone from the database and keep it in the cache."""
    zone = user_time_zone_choice(user=user) or team_time_zone(user=user)
    cache.set(viewer_time_zone_cache_key(user.pk), zone, CACHE_SECONDS)
    return zone


def user_time_zone_choice(*, user) -> str:
    """The zone the user chose themselves; empty when they follow their team's."""
    return UserPreference.objects.filter(user=user).values_list("time_zone", flat=True).first() or ""


def team_time_zone(*, user) -> str:
    return Team.objects.visible_to(user).order_by("slug").values_list("time_zone", flat=True).first() or "UTC"
