"""Times and durations in words for pages and messages ("14:05 UTC (in 12 minutes)"), and zone names."""

from __future__ import annotations

import math
from datetime import datetime

from django.utils import timezone


def duration_in_words(seconds: float) -> str:
    """``"45 seconds"``, ``"1 minute"``, ``"12 minutes"``, ``"2 hours 5 minutes"`` (rounded up, never 0)."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(minutes, 60)
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{text} {minutes} minute{'s' if minutes != 1 else ''}" if minutes else text


def until_in_words(moment: datetime, *, now: datetime) -> str:
    """``"14:05 UTC (in 12 minutes)"`` in the active time zone (a page's: the viewer's, docs/pages.md; the API's:
    UTC); the date is added when ``moment`` is not today there."""
    moment, today = timezone.localtime(moment), timezone.localtime(now).date()
    clock = moment.strftime("%H:%M" if moment.date() == today else "%Y-%m-%d %H:%M")
    return f"{clock} {zone_name(moment)} (in {duration_in_words((moment - now).total_seconds())})"


def zone_name(moment: datetime) -> str:
    """The zone's abbreviation (``CET``), or its offset where the zone has none (``UTC-03:00``)."""
    name = moment.tzname() or ""
    if name and name[0] not in "+-":
        return name
    offset = moment.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"
