"""The registry of outbox handlers (docs/architecture.md, "The outbox").

Governance stores and relays outbox messages but never imports the apps above it: each app registers the handlers
of the side effects it writes, by name, from its ``AppConfig.ready``. A handler receives the ``OutboxMessage`` and
must be idempotent: the relay delivers at least once, so a redelivery must have no second effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from governance.models import OutboxMessage

OutboxHandler = Callable[["OutboxMessage"], None]

_HANDLERS: dict[str, OutboxHandler] = {}


class UnknownOutboxHandler(LookupError):
    """A message names a handler that no app registered (kept pending: a deployment may be half rolled out)."""


def outbox_handler_register(name: str, handler: OutboxHandler) -> None:
    """Register ``handler`` under ``name``; registering the same function again is harmless, another one is an
    error."""
    known = _HANDLERS.get(name)
    if known is not None and known is not handler:
        raise ValueError(f"outbox handler {name!r} is already registered")
    _HANDLERS[name] = handler


def outbox_handler(name: str) -> OutboxHandler:
    try:
        return _HANDLERS[name]
    except KeyError:
        raise UnknownOutboxHandler(f"no outbox handler is registered as {name!r}") from None


def outbox_handler_names() -> list[str]:
    return sorted(_HANDLERS)
