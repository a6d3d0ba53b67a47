"""Projecting an approval ladder from a template snapshot: a pure function, no database.

The model is deliberately simple and explainable to a scientist looking at a preview:

- stages run one after the other, in the snapshot's order; the first is activated at ``start_at``;
- a stage's approvers first work through the items already open for its role: each open item ahead adds
  ``hours_per_open_item`` to the wait, so ``projected_start = activated_at + open_load[role] × hours_per_open_item``;
- the stage is then due ``sla_hours`` later: ``projected_due = projected_start + sla_hours``;
- the next stage is activated when the previous one is due (the SLA bound, not an optimistic guess).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from textpolicy.utc import utc_iso

DEFAULT_HOURS_PER_OPEN_ITEM = 1.0


def stage_due_at(started_at: datetime, sla_hours: float) -> datetime:
    """When a stage started at ``started_at`` is due: its SLA later. The one rule for live ladders, their
    forecasts and previews alike (docs/architecture.md, "Times")."""
    return started_at + timedelta(hours=sla_hours)


def stage_escalate_at(due_at: datetime, escalate_after_hours: float) -> datetime:
    """When an overdue stage is escalated: ``escalate_after_hours`` past its due date."""
    return due_at + timedelta(hours=escalate_after_hours)


@dataclass(frozen=True)
class ProjectedStage:
    position: int
    name: str
    required_role: str
    meaning: str
    sla_hours: float
    open_load: int
    queue_delay_hours: float
    activated_at: datetime
    projected_start: datetime
    projected_due: datetime
    escalate_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("activated_at", "projected_start", "projected_due", "escalate_at"):
            value = out[key]
            out[key] = utc_iso(value)
        return out


def ladder_simulate(
    snapshot_document: Mapping[str, Any],
    *,
    start_at: datetime,
    open_load: Mapping[str, int] | None = None,
    hours_per_open_item: float = DEFAULT_HOURS_PER_OPEN_ITEM,
) -> list[ProjectedStage]:
    """Projected start and due time of each stage of ``snapshot_document`` (see ``snapshot_document()``).

    ``start_at`` must be timezone-aware. ``open_load`` maps a role key to the number of stages currently open
    for that role (roles absent have none). ``escalate_at`` is ``projected_due`` plus the snapshot's
    ``sla_defaults.escalate_after_hours`` when it has one.
    """
    if start_at.tzinfo is None:
        raise ValueError("start_at must be timezone-aware")
    if hours_per_open_item < 0:
        raise ValueError("hours_per_open_item must not be negative")
    load = open_load or {}
    stages: Sequence[Mapping[str, Any]] = snapshot_document.get("stages") or []
    escalate_after = (snapshot_document.get("sla_defaults") or {}).get("escalate_after_hours")
    projected: list[ProjectedStage] = []
    activated_at = start_at
    for position, stage in enumerate(stages, start=1):
        role = str(stage["required_role"])
        sla_hours = float(stage["sla_hours"])
        open_items = max(int(load.get(role, 0)), 0)
        delay_hours = open_items * hours_per_open_item
        projected_start = activated_at + timedelta(hours=delay_hours)
        projected_due = stage_due_at(projected_start, sla_hours)
        projected.append(
            ProjectedStage(
                position=position,
                name=str(stage["name"]),
                required_role=role,
                meaning=str(stage.get("meaning", "")),
                sla_hours=sla_hours,
                open_load=open_items,
                queue_delay_hours=delay_hours,
                activated_at=activated_at,
                projected_start=projected_start,
                projected_due=projected_due,
                escalate_at=stage_escalate_at(projected_due, float(escalate_after)) if escalate_after else None,
            )
        )
        activated_at = projected_due
    return projected
