"""The packaging queue state of an export: one typed value, the only thing written to ``packaging_queue_state``.

Two kinds of writer fill it (docs/architecture.md, "The export lifecycle"): the approval guardrail records what
blocks packaging (``guardrail``), and the packaging worker records where packaging stands (``queued``,
``packaging``, ``blocked``, ``failed``, ``packaged``), carrying over the guardrail's pending stage and forecast.
When a gate blocks the worker, the stored ``status`` is ``blocked`` and the guardrail's own status sits beside it
in ``guardrail_status``; :attr:`QueueState.guardrail` reads either, so no caller reconciles the two keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db.models import F, IntegerField, Q
from django.db.models.functions import Cast
from django.utils import timezone

from textpolicy.utc import utc_iso

# The worker's own statuses, beside the guardrail's (approvals' ``QueueStatus``).
QUEUED, PACKAGING, BLOCKED, FAILED, PACKAGED = "queued", "packaging", "blocked", "failed", "packaged"
# Keys written only when set, so a state reads as it always has.
_OPTIONAL = ("blocked_by", "reason", "error_code")


@dataclass(frozen=True)
class QueueState:
    status: str
    pending_stage: dict[str, Any] | None = None
    forecast: str | None = None
    updated_at: str | None = None
    attempts: int = 0
    guardrail_status: str | None = None
    iteration: int | None = None
    blocked_by: str | None = None
    reason: str | None = None
    error_code: str | None = None

    @classmethod
    def for_guardrail(
        cls,
        *,
        status: str,
        pending_stage: dict[str, Any] | None,
        forecast: datetime | None,
        iteration: int | None,
        attempts: int = 0,
        now: datetime | None = None,
    ) -> QueueState:
        """The state the approval guardrail records: its status, the stage it waits for and the forecast."""
        return cls(
            status=status,
            pending_stage=pending_stage,
            forecast=utc_iso(forecast),
            updated_at=utc_iso(now or timezone.now()),
            attempts=attempts,
            guardrail_status=status,
            iteration=iteration,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> QueueState:
        data = data or {}
        fields: dict[str, Any] = {"status": ""}
        fields.update((name, data.get(name)) for name in cls.__dataclass_fields__ if name in data)
        return cls(**fields)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "pending_stage": self.pending_stage,
            "forecast": self.forecast,
            "updated_at": self.updated_at,
            "attempts": self.attempts,
        }
        if self.guardrail_status is not None:
            body["guardrail_status"] = self.guardrail_status
            body["iteration"] = self.iteration
        body.update({name: getattr(self, name) for name in _OPTIONAL if getattr(self, name) is not None})
        return body

    def advanced(self, status: str, *, attempts: int, **changes: Any) -> QueueState:
        """The worker's next state: ``status`` with the pending stage and forecast carried over (unless
        ``changes`` gives them), the guardrail's fields only when ``changes`` gives them, stamped now."""
        base = QueueState(status="", pending_stage=self.pending_stage, forecast=self.forecast)
        return replace(base, status=status, attempts=attempts, updated_at=utc_iso(timezone.now()), **changes)

    @property
    def guardrail(self) -> str | None:
        """The guardrail's status, whether the state was written by the guardrail or by a blocked worker."""
        return self.guardrail_status or self.status or None

    @property
    def key(self) -> tuple:
        """What makes two states "the same" for telemetry: the guardrail's status, the pending stage and the
        iteration (a forecast that moves, or the worker re-writing the state as ``blocked``, is not a new
        state)."""
        pending = self.pending_stage or {}
        stage = pending.get("id") if isinstance(pending, dict) else pending
        return self.guardrail, stage, self.iteration


def queue_state_says(statuses: Iterable[str], *, prefix: str = "") -> Q:
    """Rows whose stored queue state carries one of the guardrail ``statuses`` (in either key); ``prefix`` is
    the path to the export from the queried model (``"ladder__export__"``)."""
    statuses = list(statuses)
    field = f"{prefix}packaging_queue_state"
    return Q(**{f"{field}__status__in": statuses}) | Q(**{f"{field}__guardrail_status__in": statuses})


def queue_state_status_is(status: str | Iterable[str], *, prefix: str = "") -> Q:
    """Rows whose stored queue state's own ``status`` is ``status`` (or one of them): ``blocked`` for a worker
    stopped by a gate, the guardrail's status for a state the guardrail wrote."""
    if isinstance(status, str):
        return Q(**{f"{prefix}packaging_queue_state__status": status})
    return Q(**{f"{prefix}packaging_queue_state__status__in": list(status)})


def queue_state_pending_stage_id(*, prefix: str = "") -> Cast:
    """The id of the stage the stored queue state waits for, as an integer expression (NULL when none)."""
    return Cast(F(f"{prefix}packaging_queue_state__pending_stage__id"), IntegerField())


def queue_state_unset(*, prefix: str = "") -> Q:
    return Q(**{f"{prefix}packaging_queue_state": {}})
