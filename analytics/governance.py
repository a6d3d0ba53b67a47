"""Governance analytics (SPEC §8): SLA accuracy, blocker trends, ladder load and guardrail forecasts.

Everything is computed by the database in a fixed number of aggregate queries, whatever the number of exports or
stages: one per figure family, grouped by role and team, with rollups done in Python over the (small) grouped
rows. Nothing here writes; the API and the dashboard read it through ``analytics.cache``.

Predicted vs actual fuses ``governance.preview.summary`` timeline events (the ladder projection shown to a
scientist before an export) with what the ladders then did. A summary's payload carries the projected stages as
``stages`` (or ``ladder.stages``): each with ``required_role`` and ``activated_at``/``projected_start``/
``projected_due`` (ISO 8601) or at least ``sla_hours``. Summaries without usable stages are counted and skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, DateTimeField, DurationField, ExpressionWrapper, F, Q, QuerySet, Value
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from approvals.choices import LadderStatus, QueueStatus, StageStatus
from approvals.guardrails import forecast_ladder_clearance
from approvals.models import ApprovalLadder, ApprovalStage
from config.errors import NotFound, ValidationFailed
from exports.choices import ExportStatus
from exports.models import ExecutionEvent, NarrativeExport
from governance.models import Team

PREVIEW_SUMMARY_EVENT = "governance.preview.summary"
TEAM_ID = "ladder__export__execution__team_id"
QUEUE_STATUS_LABELS = {str(value): str(label) for value, label in QueueStatus.choices}


@dataclass(frozen=True)
class TeamRef:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class AnalyticsScope:
    """Which teams and which time window a computation covers. ``teams`` are only ever teams the viewer belongs
    to (see ``analytics_scope``)."""

    teams: tuple[TeamRef, ...]
    window_days: int

    @property
    def team_ids(self) -> list[int]:
        return [team.id for team in self.teams]

    def slug_of(self, team_id: int) -> str:
        return next((team.slug for team in self.teams if team.id == team_id), str(team_id))


def parse_window(value: str | int | None) -> int:
    """``14``, ``"14"`` or ``"14d"`` → 14 days, between 1 and ``ANALYTICS_MAX_WINDOW_DAYS``."""
    if value in (None, ""):
        return settings.ANALYTICS_DEFAULT_WINDOW_DAYS
    text = str(value).strip().lower().removesuffix("d")
    if not text.isdigit() or not 1 <= int(text) <= settings.ANALYTICS_MAX_WINDOW_DAYS:
        raise ValidationFailed(
            f"window must be a number of days between 1 and {settings.ANALYTICS_MAX_WINDOW_DAYS} (e.g. 14 or 14d).",
            code="invalid_window",
            details={"window": [f"Invalid value: {str(value)[:20]!r}."]},
        )
    return int(text)


def analytics_scope(*, user, team_slug: str | None = None, window: str | int | None = None) -> AnalyticsScope:
    """The viewer's teams, optionally narrowed to one of them; a team the viewer does not belong to is a 404."""
    window_days = parse_window(window)
    teams = tuple(
        TeamRef(*row) for row in Team.objects.visible_to(user).order_by("slug").values_list("id", "slug", "name")
    )
    if team_slug:
        teams = tuple(team for team in teams if team.slug == team_slug)
        if not teams:
            raise NotFound(f"No team '{team_slug[:63]}' among your teams.", code="team_not_found")
    return AnalyticsScope(teams=teams, window_days=window_days)


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _minutes(value: timedelta | float | int | None) -> float | None:
    """Average durations come back as timedelta (PostgreSQL) or microseconds (SQLite)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return round(value.total_seconds() / 60, 1)
    return round(float(value) / 60_000_000, 1)


def _duration(expression) -> ExpressionWrapper:
    return ExpressionWrapper(expression, output_field=DurationField())


def _at(moment: datetime) -> Value:
    return Value(moment, output_field=DateTimeField())


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _weighted_mean(pairs: Iterable[tuple[float | None, int]]) -> float | None:
    total = weight = 0.0
    for value, count in pairs:
        if value is not None and count:
            total += value * count
            weight += count
    return round(total / weight, 1) if weight else None


def stages_in_scope(scope: AnalyticsScope) -> QuerySet[ApprovalStage]:
    return ApprovalStage.objects.filter(**{f"{TEAM_ID}__in": scope.team_ids})


def window_start(scope: AnalyticsScope, now: datetime) -> datetime:
    today = datetime.combine(now.date(), time.min, tzinfo=UTC)
    return today - timedelta(days=scope.window_days - 1)


# ---------------------------------------------------------------------------------------------------------------
# SLA accuracy


def _iso(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


def preview_projection(payload: Mapping[str, Any]) -> tuple[dict[str, list[float]], float | None]:
    """From one preview summary: projected minutes per role (a stage's activation to its projected due time)
    and the projected minutes until the whole ladder clears. Empty when the payload has no usable stages."""
    stages = payload.get("stages")
    if not isinstance(stages, list):
        ladder = payload.get("ladder")
        stages = ladder.get("stages") if isinstance(ladder, dict) else None
    if not isinstance(stages, list):
        return {}, None
    per_role: dict[str, list[float]] = defaultdict(list)
    total = 0.0
    first_start = last_due = None
    for stage in stages:
        if not isinstance(stage, dict) or not isinstance(stage.get("required_role"), str):
            continue
        start = _iso(stage.get("activated_at")) or _iso(stage.get("projected_start"))
        due = _iso(stage.get("projected_due")) or _iso(stage.get("due_at"))
        if start and due and due >= start:
            minutes = (due - start).total_seconds() / 60
            first_start = min(first_start, start) if first_start else start
            last_due = max(last_due, due) if last_due else due
        elif isinstance(stage.get("sla_hours"), int | float) and stage["sla_hours"] >= 0:
            minutes = float(stage["sla_hours"]) * 60
        else:
            continue
        per_role[stage["required_role"]].append(minutes)
        total += minutes
    if not per_role:
        return {}, None
    ladder_minutes = (last_due - first_start).total_seconds() / 60 if first_start and last_due else total
    return dict(per_role), ladder_minutes


def sla_accuracy(scope: AnalyticsScope, *, now: datetime) -> dict[str, Any]:
    """Share of stages decided within their SLA in the window, per role, and predicted vs actual durations."""
    since = window_start(scope, now)
    rows = list(
        stages_in_scope(scope)
        .filter(completed_at__gte=since, completed_at__lte=now, started_at__isnull=False, due_at__isnull=False)
        .values("required_role")
        .annotate(
            completed=Count("id"),
            within_sla=Count("id", filter=Q(completed_at__lte=F("due_at"))),
            mean=Avg(_duration(F("completed_at") - F("started_at"))),
        )
        .order_by("required_role")
    )
    by_role = [
        {
            "role": row["required_role"],
            "completed": row["completed"],
            "within_sla": row["within_sla"],
            "share_within_sla": _share(row["within_sla"], row["completed"]),
            "mean_minutes": _minutes(row["mean"]),
        }
        for row in rows
    ]
    completed = sum(row["completed"] for row in by_role)
    within = sum(row["within_sla"] for row in by_role)
    return {
        "completed": completed,
        "within_sla": within,
        "share_within_sla": _share(within, completed),
        "mean_minutes": _weighted_mean((row["mean_minutes"], row["completed"]) for row in by_role),
        "by_role": by_role,
        "predicted_vs_actual": predicted_vs_actual(scope, now=now, actual_by_role=by_role),
    }


def predicted_vs_actual(
    scope: AnalyticsScope, *, now: datetime, actual_by_role: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Two queries: the window's preview summaries (newest ``ANALYTICS_PREVIEW_SAMPLE``), then the ladders of the
    previewed executions. A preview is matched with the first ladder of its execution created at or after it."""
    since = window_start(scope, now)
    previews = list(
        ExecutionEvent.objects.filter(
            event_type=PREVIEW_SUMMARY_EVENT,
            execution__team_id__in=scope.team_ids,
            occurred_at__gte=since,
            occurred_at__lte=now,
        )
        .order_by("-occurred_at", "-id")
        .values_list("execution_id", "occurred_at", "payload")[: settings.ANALYTICS_PREVIEW_SAMPLE]
    )
    predicted_by_role: dict[str, list[float]] = defaultdict(list)
    projections: list[tuple[int, datetime, float]] = []
    for execution_id, occurred_at, payload in previews:
        per_role, ladder_minutes = preview_projection(payload if isinstance(payload, dict) else {})
        for role, values in per_role.items():
            predicted_by_role[role].extend(values)
        if ladder_minutes is not None:
            projections.append((execution_id, occurred_at, ladder_minutes))

    ladders_by_execution: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    if projections:
        for execution_id, created_at, finalized_at in (
            ApprovalLadder.objects.filter(
                export__execution_id__in={p[0] for p in projections},
                created_at__gte=min(p[1] for p in projections),
            )
            .order_by("created_at", "id")
            .values_list("export__execution_id", "created_at", "finalized_at")
        ):
            ladders_by_execution[execution_id].append((created_at, finalized_at))
    matched: list[tuple[float, float]] = []
    for execution_id, occurred_at, predicted in projections:
        ladder = next((row for row in ladders_by_execution[execution_id] if row[0] >= occurred_at), None)
        if ladder is not None and ladder[1] is not None:
            matched.append((predicted, (ladder[1] - ladder[0]).total_seconds() / 60))

    actual = {row["role"]: row for row in actual_by_role}
    roles = sorted(set(predicted_by_role) | set(actual))
    by_role = []
    for role in roles:
        values = predicted_by_role.get(role, [])
        predicted_mean = round(sum(values) / len(values), 1) if values else None
        actual_mean = actual[role]["mean_minutes"] if role in actual else None
        by_role.append(
            {
                "role": role,
                "predicted_minutes": predicted_mean,
                "actual_minutes": actual_mean,
                "difference_minutes": round(actual_mean - predicted_mean, 1)
                if predicted_mean is not None and actual_mean is not None
                else None,
                "previewed_stages": len(values),
                "completed_stages": actual[role]["completed"] if role in actual else 0,
            }
        )
    count = len(matched)
    return {
        "previews": len(previews),
        "previews_with_projection": len(projections),
        "by_role": by_role,
        "ladders": {
            "matched": count,
            "mean_predicted_minutes": round(sum(p for p, _ in matched) / count, 1) if count else None,
            "mean_actual_minutes": round(sum(a for _, a in matched) / count, 1) if count else None,
            "mean_absolute_error_minutes": round(sum(abs(a - p) for p, a in matched) / count, 1) if count else None,
            "share_cleared_by_forecast": _share(sum(1 for p, a in matched if a <= p), count),
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# Blocker trends


def trend_points(scope: AnalyticsScope, *, now: datetime) -> list[tuple[str, datetime]]:
    """One point per day of the window: the end of that day (UTC), or now for today."""
    start = window_start(scope, now)
    points = []
    for offset in range(scope.window_days):
        day = start + timedelta(days=offset)
        points.append((day.date().isoformat(), min(day + timedelta(days=1), now)))
    return points


def blocker_trends(scope: AnalyticsScope, *, now: datetime) -> dict[str, Any]:
    """Stages blocking a ladder (started, not yet decided) and how many of them were overdue, at the end of each
    day of the window, per role and team. One query with two filtered counts per day."""
    points = trend_points(scope, now=now)
    aggregates = {}
    for index, (_, moment) in enumerate(points):
        open_then = Q(started_at__lte=moment) & (Q(completed_at__isnull=True) | Q(completed_at__gt=moment))
        aggregates[f"b{index}"] = Count("id", filter=open_then)
        aggregates[f"o{index}"] = Count("id", filter=open_then & Q(due_at__lt=moment))
    rows = list(
        stages_in_scope(scope)
        .filter(started_at__lte=now)
        .filter(Q(completed_at__isnull=True) | Q(completed_at__gt=points[0][1] - timedelta(days=1)))
        .values("required_role", team_id=F(TEAM_ID))
        .annotate(**aggregates)
        .order_by("required_role", "team_id")
    )
    days = len(points)

    def series(selected: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
        blocking, overdue = [0] * days, [0] * days
        for row in selected:
            for index in range(days):
                blocking[index] += row[f"b{index}"]
                overdue[index] += row[f"o{index}"]
        return {"blocking": blocking, "overdue": overdue}

    roles = sorted({row["required_role"] for row in rows})
    team_ids = sorted({row["team_id"] for row in rows})
    return {
        "days": [label for label, _ in points],
        "total": series(rows),
        "by_role": [{"role": role, **series(r for r in rows if r["required_role"] == role)} for role in roles],
        "by_team": [
            {"team": scope.slug_of(team_id), **series(r for r in rows if r["team_id"] == team_id)}
            for team_id in team_ids
        ],
    }


# ---------------------------------------------------------------------------------------------------------------
# Ladder load


def _load_entry(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    open_count = sum(row["open"] for row in rows)
    return {
        "open": open_count,
        "overdue": sum(row["overdue"] for row in rows),
        "escalated": sum(row["escalated"] for row in rows),
        "pending": sum(row["pending"] for row in rows),
        "mean_open_minutes": _weighted_mean((_minutes(row["mean_open"]), row["open"]) for row in rows),
    }


def ladder_load(scope: AnalyticsScope, *, now: datetime) -> dict[str, Any]:
    """Open (in progress), overdue, escalated and waiting (pending) stages and the mean time the open ones have
    been open, per role, assignee and team, and as a roles × teams matrix. One grouped query."""
    in_progress = Q(status=StageStatus.IN_PROGRESS)
    rows = list(
        stages_in_scope(scope)
        .filter(status__in=[StageStatus.IN_PROGRESS, StageStatus.PENDING], ladder__status=LadderStatus.IN_PROGRESS)
        .values("required_role", "assignee__username", team_id=F(TEAM_ID))
        .annotate(
            open=Count("id", filter=in_progress),
            overdue=Count("id", filter=in_progress & Q(due_at__lt=now)),
            escalated=Count("id", filter=in_progress & Q(escalated_at__isnull=False)),
            pending=Count("id", filter=Q(status=StageStatus.PENDING)),
            mean_open=Avg(_duration(_at(now) - F("started_at")), filter=in_progress),
        )
        .order_by("required_role", "team_id", "assignee__username")
    )
    grouped: dict[str, dict[Any, list]] = {
        "role": defaultdict(list),
        "team": defaultdict(list),
        "cell": defaultdict(list),
    }
    assignees: dict[str | None, list] = defaultdict(list)
    for row in rows:
        grouped["role"][row["required_role"]].append(row)
        grouped["team"][row["team_id"]].append(row)
        grouped["cell"][(row["required_role"], row["team_id"])].append(row)
        if row["open"]:
            assignees[row["assignee__username"]].append(row)
    alert = settings.ANALYTICS_MEAN_OPEN_ALERT_MINUTES
    by_role = [{"role": role, **_load_entry(group)} for role, group in sorted(grouped["role"].items())]
    by_team = [{"team": scope.slug_of(team_id), **_load_entry(group)} for team_id, group in grouped["team"].items()]
    by_assignee = [
        {"assignee": username, **_load_entry(group)}
        for username, group in sorted(assignees.items(), key=lambda item: (item[0] is None, item[0] or ""))
    ]
    matrix = []
    for (role, team_id), group in sorted(grouped["cell"].items()):
        entry = _load_entry(group)
        matrix.append(
            {
                "role": role,
                "team": scope.slug_of(team_id),
                **entry,
                "over_alert": bool(entry["mean_open_minutes"] and entry["mean_open_minutes"] > alert),
            }
        )
    return {
        **_load_entry(rows),
        "mean_open_alert_minutes": alert,
        "by_role": by_role,
        "by_team": sorted(by_team, key=lambda entry: entry["team"]),
        "by_assignee": by_assignee,
        "matrix": matrix,
    }


# ---------------------------------------------------------------------------------------------------------------
# Guardrail forecasts


def stage_brief(stage: ApprovalStage) -> dict[str, Any]:
    return {
        "id": stage.pk,
        "name": stage.name,
        "required_role": stage.required_role,
        "assignee": stage.assignee.username if stage.assignee_id else None,
        "due_at": stage.due_at,
    }


def forecasts_for_ladders(ladder_ids: Iterable[int], *, now: datetime) -> dict[int, datetime | None]:
    """``{ladder_id: projected clearance}`` for a page of ladders, in one query."""
    stages_by_ladder: dict[int, list[ApprovalStage]] = defaultdict(list)
    for stage in ApprovalStage.objects.filter(ladder_id__in=list(ladder_ids)).only(
        "id", "ladder_id", "index", "status", "due_at", "sla_hours"
    ):
        stages_by_ladder[stage.ladder_id].append(stage)
    return {ladder_id: forecast_ladder_clearance(stages, now=now) for ladder_id, stages in stages_by_ladder.items()}


def export_counts(scope: AnalyticsScope, *, now: datetime) -> dict[str, Any]:
    """Exports per status, and how many were queued and packaged since midnight UTC. One query."""
    midnight = datetime.combine(now.date(), time.min, tzinfo=UTC)
    aggregates = {status: Count("id", filter=Q(status=status)) for status in ExportStatus.values}
    totals = NarrativeExport.objects.filter(execution__team_id__in=scope.team_ids).aggregate(
        **aggregates,
        queued_today=Count("id", filter=Q(queued_at__gte=midnight)),
        packaged_today=Count("id", filter=Q(packaged_at__gte=midnight)),
    )
    return {
        "by_status": {status: totals[status] for status in ExportStatus.values},
        "queued_today": totals["queued_today"],
        "packaged_today": totals["packaged_today"],
    }


def guardrail_forecasts(scope: AnalyticsScope, *, now: datetime, limit: int | None = None) -> dict[str, Any]:
    """Exports held by the packaging guardrail, most urgent active stage first, with the projected time each
    ladder clears. Three queries: counts, the page of active stages, their ladders' stages."""
    limit = limit or settings.ANALYTICS_GUARDRAIL_LIMIT
    counts = export_counts(scope, now=now)
    active = list(
        stages_in_scope(scope)
        .filter(status=StageStatus.IN_PROGRESS, ladder__status=LadderStatus.IN_PROGRESS)
        .select_related("ladder__export__execution__team", "assignee")
        .order_by("due_at", "id")[:limit]
    )
    forecasts = forecasts_for_ladders((stage.ladder_id for stage in active), now=now)
    rows = []
    for stage in active:
        export = stage.ladder.export
        forecast = forecasts.get(stage.ladder_id)
        guardrail_status = (export.packaging_queue_state or {}).get("status") or QueueStatus.AWAITING_APPROVAL
        rows.append(
            {
                "export_id": export.pk,
                "execution_id": export.execution_id,
                "execution_title": export.execution.title,
                "team": export.execution.team.slug,
                "version": export.version,
                "status": export.status,
                "guardrail_status": guardrail_status,
                "guardrail_label": QUEUE_STATUS_LABELS.get(guardrail_status, guardrail_status.replace("_", " ")),
                "pending_stage": stage_brief(stage),
                "forecast": forecast,
                "forecast_in_hours": round((forecast - now).total_seconds() / 3600, 1) if forecast else None,
                "overdue": bool(stage.due_at and stage.due_at < now),
            }
        )
    return {
        "blocked": counts["by_status"][ExportStatus.AWAITING_APPROVAL],
        "exports_by_status": counts["by_status"],
        "queued_today": counts["queued_today"],
        "packaged_today": counts["packaged_today"],
        "exports": rows,
    }


# ---------------------------------------------------------------------------------------------------------------
# Everything


def governance_analytics(scope: AnalyticsScope, *, now: datetime | None = None) -> dict[str, Any]:
    """The four figure families for ``scope``. Query count: 7 (+1 when the window has preview summaries)."""
    now = now or timezone.now()
    return {
        "scope": {
            "teams": [team.slug for team in scope.teams],
            "window_days": scope.window_days,
            "since": window_start(scope, now),
            "until": now,
        },
        "computed_at": now,
        "sla_accuracy": sla_accuracy(scope, now=now),
        "blocker_trends": blocker_trends(scope, now=now),
        "ladder_load": ladder_load(scope, now=now),
        "guardrail_forecasts": guardrail_forecasts(scope, now=now),
    }
