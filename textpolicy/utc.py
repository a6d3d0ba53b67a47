"""How the project writes a moment in UTC as text: one place for every format (docs/architecture.md, "Times").

Pure Python like the rest of ``textpolicy``: the narrative renderer and the bundle library use it as well as
the apps, so it must not load Django."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 as Python writes it, with ``Z`` for UTC (``2026-01-02T03:04:05.123456Z``); None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def utc_iso_compact(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: seconds, plus microseconds only when they are not zero. Aware values only:
    narratives and bundles must never guess a zone."""
    if value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def utc_minutes(value: datetime | None, *, missing: str = "") -> str:
    """``2026-01-02 03:04 UTC`` for people reading e-mails and pages; ``missing`` when there is no value."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else missing
