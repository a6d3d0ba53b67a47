"""The one registry of audit actions that the governance event feed carries (docs/feed.md).

Every app registers the actions it writes to the audit trail that belong in the feed, from its ``AppConfig.ready``;
a feature that arrives later (legal holds, retention, storage tiers) registers its own and its rows flow through
the feed with no change to the feed itself. The feed reads the audit chain, so only audited actions can be listed.
"""

from __future__ import annotations

_TYPES: dict[str, str] = {}


def feed_event_types_register(category: str, *actions: str) -> None:
    """Add ``actions`` to the feed under ``category`` (``approval``, ``packaging``, ``artifact``, ``preview``, …).

    Registering the same action twice under the same category is harmless; under another category it is a
    programming error."""
    for action in actions:
        known = _TYPES.get(action)
        if known is not None and known != category:
            raise ValueError(f"{action!r} is already registered for the feed under {known!r}")
        _TYPES[str(action)] = category


def feed_event_types() -> dict[str, str]:
    """``{action: category}`` of every registered feed event type."""
    return dict(_TYPES)
