"""Times and durations in words for pages and messages ("14:05 UTC (in 12 minutes)")."""

from __future__ import annotations

import math
from datetime import UTC, datetime


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
    """``"14:05 UTC (in 12 minutes)"``; the date is added when ``moment`` is not today (UTC)."""
    moment = moment.astimezone(UTC)
    clock = (
        moment.strftime("%H:%M UTC")
        if moment.date() == now.astimezone(UTC).date()
        else moment.strftime("%Y-%m-%d %H:%M UTC")
    )
    return f"{clock} (in {duration_in_words((moment - now).total_seconds())})"
