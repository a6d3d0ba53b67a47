"""Reads for the dashboard's live panels: the overdue stage queue, restricted to the viewer's scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import F, OuterRef, QuerySet, Subquery

from analytics.governance import STAGE_ROW_FIELDS, AnalyticsScope, forecasts_for_ladders, stages_in_scope
from approvals.choices import EscalationOutcome, LadderStatus, StageStatus
from approvals.models import ApprovalStage, StageEscalation
from governance.models import Role

# Sort keys offered by the queue's column headers → ordering (a leading "-" in the request reverses it).
QUEUE_SORTS: dict[str, tuple[str, ...]] = {
    "export": ("ladder__export_id",),
    "team": ("ladder__export__execution__team__slug", "due_at"),
    "stage": ("name", "due_at"),
    "role": ("required_role", "due_at"),
    "assignee": ("assignee__username", "due_at"),
    "due": ("due_at",),
    # Most overdue first is the earliest due date first.
    "overdue": ("-due_at",),
}
DEFAULT_QUEUE_SORT = "-overdue"


def queue_sort(value: str | None) -> str:
    key = (value or "").removeprefix("-")
    return value if value and key in QUEUE_SORTS else DEFAULT_QUEUE_SORT


def _ordering(sort: str) -> list:
    descending = sort.startswith("-")
    fields = []
    for field in QUEUE_SORTS[sort.removeprefix("-")]:
        reverse = field.startswith("-") != descending
        name = field.removeprefix("-")
        fields.append(F(name).desc(nulls_last=True) if reverse else F(name).asc(nulls_last=True))
    return [*fields, "id"]


def overdue_stages(scope: AnalyticsScope, *, now: datetime, role: str | None = None) -> QuerySet[ApprovalStage]:
    queryset = stages_in_scope(scope).filter(
        status=StageStatus.IN_PROGRESS, ladder__status=LadderStatus.IN_PROGRESS, due_at__lt=now
    )
    if role:
        queryset = queryset.filter(required_role=role)
    return queryset


@dataclass(frozen=True)
class LastEscalation:
    """The latest recorded outcome of chasing a stage (docs/escalations.md)."""

    outcome: str
    contacted: str
    recorded_at: datetime
    next_check_at: datetime | None
    recorded_by: str

    @property
    def outcome_label(self) -> str:
        return EscalationOutcome(self.outcome).label


LAST_ESCALATION_FIELDS = {
    "last_escalation_outcome": "outcome",
    "last_escalation_contacted": "contacted",
    "last_escalation_recorded_at": "recorded_at",
    "last_escalation_next_check_at": "next_check_at",
    "last_escalation_recorded_by": "actor__username",
}


def _with_last_escalation(queryset: QuerySet[ApprovalStage]) -> QuerySet[ApprovalStage]:
    """Each stage's latest escalation record, read in the same query as the stage."""
    latest = StageEscalation.objects.filter(stage_id=OuterRef("pk")).order_by("-recorded_at", "-id")
    return queryset.annotate(
        **{name: Subquery(latest.values(field)[:1]) for name, field in LAST_ESCALATION_FIELDS.items()}
    )


def _last_escalation(stage: ApprovalStage) -> LastEscalation | None:
    if stage.last_escalation_outcome is None:  # type: ignore[attr-defined]  # annotated by _with_last_escalation
        return None
    return LastEscalation(*(getattr(stage, name) for name in LAST_ESCALATION_FIELDS))


@dataclass(frozen=True)
class QueueRow:
    stage: ApprovalStage
    minutes_overdue: int
    detected_at: datetime
    forecast: datetime | None
    last_escalation: LastEscalation | None = None

    @property
    def export(self):
        return self.stage.ladder.export

    @property
    def breaches(self) -> list[str]:
        return ["Overdue"] + (["Escalated"] if self.stage.escalated_at else [])


@dataclass(frozen=True)
class OverdueQueue:
    page: Page
    rows: list[QueueRow]
    sort: str
    role: str | None


def overdue_stage_queue(
    scope: AnalyticsScope, *, now: datetime, role: str | None = None, sort: str | None = None, page: Any = 1
) -> OverdueQueue:
    """One page of overdue stages with their exports and guardrail forecasts: count, page and the page's ladders'
    stages — three queries whatever the queue's length."""
    sort = queue_sort(sort)
    queryset = _with_last_escalation(
        overdue_stages(scope, now=now, role=role)
        .select_related("ladder__export__execution__team", "assignee")
        .only(*STAGE_ROW_FIELDS)
        .order_by(*_ordering(sort))
    )
    paginator = Paginator(queryset, settings.ANALYTICS_QUEUE_PAGE_SIZE)
    current = paginator.get_page(page)
    stages = list(current.object_list)
    forecasts = forecasts_for_ladders((stage.ladder_id for stage in stages), now=now)
    rows = [
        QueueRow(
            stage=stage,
            minutes_overdue=int((now - stage.due_at).total_seconds() // 60),
            detected_at=stage.overdue_at or stage.due_at,
            forecast=forecasts.get(stage.ladder_id),
            last_escalation=_last_escalation(stage),
        )
        for stage in stages
    ]
    return OverdueQueue(page=current, rows=rows, sort=sort, role=role)


def role_choices() -> list[tuple[str, str]]:
    return list(Role.objects.order_by("key").values_list("key", "label"))
