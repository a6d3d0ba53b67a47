"""Known ladder states for analytics tests: exports whose stage timestamps are set to exact offsets from NOW."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction

from approvals.models import ApprovalLadder, ApprovalStage
from exports.services.executions import EventInput, execution_create, timeline_append
from tests.approvals.factories import export_with_ladder


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def stage(export, index: int) -> ApprovalStage:
    return ApprovalStage.objects.get(ladder__export=export, index=index)


def set_stage(export, index: int, *, now, **offsets) -> None:
    """``set_stage(export, 0, now=NOW, status="approved", started=-10, due=14, completed=-5)`` (hours from now)."""
    fields = {}
    for name in ("started", "due", "completed", "overdue", "escalated"):
        if name in offsets:
            value = offsets.pop(name)
            fields[f"{name}_at"] = None if value is None else now + hours(value)
    fields.update(offsets)
    ApprovalStage.objects.filter(ladder__export=export, index=index).update(**fields)


def new_export(*, team, author, snapshot, title: str = "Assay"):
    execution = execution_create(team=team, title=title, owner=author, protocol_template_key="assay")
    return export_with_ladder(execution=execution, author=author, snapshot=snapshot)


def known_exports(*, team, author, snapshot, now):
    """Three exports of the standard ladder (reviewer 24 h → qa_approver 48 h → compliance 72 h):

    - a: review done within SLA in 5 h (300 min); QA open 5 h, due in 43 h.
    - b: review done late in 30 h (1800 min); QA open 10 h, overdue by 1 h and escalated.
    - c: review open for 2 h, due in 22 h.
    """
    a = new_export(team=team, author=author, snapshot=snapshot, title="A")
    b = new_export(team=team, author=author, snapshot=snapshot, title="B")
    c = new_export(team=team, author=author, snapshot=snapshot, title="C")
    set_stage(a, 0, now=now, status="approved", started=-10, due=14, completed=-5)
    set_stage(a, 1, now=now, status="in_progress", started=-5, due=43)
    set_stage(b, 0, now=now, status="approved", started=-40, due=-16, completed=-10)
    set_stage(b, 1, now=now, status="in_progress", started=-10, due=-1, overdue=-0.5, escalated=-0.25)
    set_stage(c, 0, now=now, status="in_progress", started=-2, due=22)
    return a, b, c


def preview_summary(execution, *, at, stage_hours=(24, 48, 72), roles=("reviewer", "qa_approver", "compliance")):
    """A ``governance.preview.summary`` event as the preview endpoint writes it, projected from ``at``."""
    stages, start = [], at
    for position, (role, sla) in enumerate(zip(roles, stage_hours, strict=True), start=1):
        due = start + hours(sla)
        stages.append(
            {
                "position": position,
                "required_role": role,
                "sla_hours": sla,
                "activated_at": start.isoformat(),
                "projected_start": start.isoformat(),
                "projected_due": due.isoformat(),
            }
        )
        start = due
    with transaction.atomic():
        (event,) = timeline_append(
            execution=execution,
            actor=None,
            events=[EventInput("governance.preview.summary", {"stages": stages}, occurred_at=at)],
        )
    return event


def finalize(export, *, created, finalized) -> None:
    ApprovalLadder.objects.filter(export=export).update(created_at=created, finalized_at=finalized, status="approved")
