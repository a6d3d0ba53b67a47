"""Governance analytics (docs/analytics.md): SLA accuracy, blocker trends, ladder load and guardrail forecasts.

Everything is computed by the database in a fixed number of aggregate queries, whatever the number of exports or
stages: one per figure family, grouped by role and team, with rollups done in Python over the (small) grouped
rows. Nothing here writes; the API and the dashboard read it through ``analytics.cache``.

Predicted vs actual fuses ``governance.preview.summary`` timeline events (the ladder projection shown to a
scientist before an export) with what the ladders then did. A summary's payload carries the projected stages as
``stages`` (or ``ladder.stages``): each with ``required_role`` and ``activated_at``/``projected_start``/
``projected_due`` (ISO 8601) or at least ``sla_hours``. Summaries without usable stages are counted and skipped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, DateTimeField, DurationField, ExpressionWrapper, F, Q, QuerySet, Value
from django.utils import timezone

from approvals.choices import LadderStatus, QueueStatus, StageStatus
from approvals.guardrails import forecast_ladder_clearance
from approvals.models import ApprovalLadder, ApprovalStage
from config.errors import NotFound, ValidationFailed
from exports.choices import ExportStatus
from exports.events import EventType
from exports.models import ExecutionEvent, NarrativeExport
from exports.queue_state import QueueState
from governance.models import Team

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
# One pass over the stages


def trend_points(scope: AnalyticsScope, *, now: datetime) -> list[tuple[str, datetime]]:
    """One point per day of the window: the end of that day (UTC), or now for today."""
    start = window_start(scope, now)
    points = []
    for offset in range(scope.window_days):
        day = start + timedelta(days=offset)
        points.append((day.date().isoformat(), min(day + timedelta(days=1), now)))
    return points


def stage_aggregates(scope: AnalyticsScope, *, now: datetime) -> list[dict[str, Any]]:
    """Every stage figure in one grouped query (by role, team and assignee): stages decided in the window and
    how many within SLA; for each day of the window, stages blocking a ladder (started, not yet decided) at its
    end and how many of them were overdue; and the load now — open, overdue, escalated, waiting, mean open time.
    Rolled up per role, team, assignee and cell by the figure functions below, in Python, over a few dozen rows.
    """
    since = window_start(scope, now)
    points = trend_points(scope, now=now)
    decided = Q(completed_at__gte=since, completed_at__lte=now, started_at__isnull=False, due_at__isnull=False)
    live_ladder = Q(ladder__status=LadderStatus.IN_PROGRESS)
    in_progress = Q(status=StageStatus.IN_PROGRESS) & live_ladder
    blocking_in_window = Q(started_at__lte=now) & (Q(completed_at__isnull=True) | Q(completed_at__gt=since))
    aggregates: dict[str, Any] = {
        "decided": Count("id", filter=decided),
        "within_sla": Count("id", filter=decided & Q(completed_at__lte=F("due_at"))),
        "decided_mean": Avg(_duration(F("completed_at") - F("started_at")), filter=decided),
        "open": Count("id", filter=in_progress),
        "overdue": Count("id", filter=in_progress & Q(due_at__lt=now)),
        "escalated": Count("id", filter=in_progress & Q(escalated_at__isnull=False)),
        "pending": Count("id", filter=Q(status=StageStatus.PENDING) & live_ladder),
        "mean_open": Avg(_duration(_at(now) - F("started_at")), filter=in_progress),
    }
    for index, (_, moment) in enumerate(points):
        open_then = Q(started_at__lte=moment) & (Q(completed_at__isnull=True) | Q(completed_at__gt=moment))
        aggregates[f"b{index}"] = Count("id", filter=open_then)
        aggregates[f"o{index}"] = Count("id", filter=open_then & Q(due_at__lt=moment))
    rows = list(
        stages_in_scope(scope)
        .filter(decided | blocking_in_window | Q(status__in=[StageStatus.IN_PROGRESS, StageStatus.PENDING]))
        .values("required_role", "assignee_id", team_id=F(TEAM_ID))
        .annotate(**aggregates)
        .order_by()
    )
    # Usernames in a second small query rather than a join over every stage row.
    usernames = dict(
        get_user_model()
        .objects.filter(pk__in={row["assignee_id"] for row in rows} - {None})
        .values_list("pk", "username")
    )
    for row in rows:
        row["assignee__username"] = usernames.get(row["assignee_id"])
    return sorted(rows, key=lambda row: (row["required_role"], row["team_id"], row["assignee__username"] or ""))


def _group(rows: Iterable[Mapping[str, Any]], key) -> dict[Any, list[Mapping[str, Any]]]:
    grouped: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped


# ---------------------------------------------------------------------------------------------------------------
# SLA accuracy


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _preview_stages(payload: Mapping[str, Any]) -> list | None:
    stages = payload.get("stages")
    if not isinstance(stages, list):
        ladder = payload.get("ladder")
        stages = ladder.get("stages") if isinstance(ladder, dict) else None
    return stages if isinstance(stages, list) else None


def _stage_window(stage: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """A stage's projected (start, due), when both are known and in order."""
    start = _iso(stage.get("activated_at") or stage.get("projected_start"))
    due = _iso(stage.get("projected_due") or stage.get("due_at")) if start else None
    return (start, due) if start and due and due >= start else None


def _sla_minutes(stage: Mapping[str, Any]) -> float | None:
    sla = stage.get("sla_hours")
    if isinstance(sla, int | float) and not isinstance(sla, bool) and sla >= 0:
        return float(sla) * 60
    return None


def preview_projection(payload: Mapping[str, Any]) -> tuple[dict[str, list[float]], float | None]:
    """From one preview summary: projected minutes per role (a stage's activation to its projected due time)
    and the projected minutes until the whole ladder clears. Empty when the payload has no usable stages."""
    per_role: dict[str, list[float]] = defaultdict(list)
    total = 0.0
    windows: list[tuple[datetime, datetime]] = []
    for stage in _preview_stages(payload) or []:
        role = stage.get("required_role") if isinstance(stage, dict) else None
        if not isinstance(role, str):
            continue
        window = _stage_window(stage)
        minutes = (window[1] - window[0]).total_seconds() / 60 if window else _sla_minutes(stage)
        if minutes is None:
            continue
        if window:
            windows.append(window)
        per_role[role].append(minutes)
        total += minutes
    if not per_role:
        return {}, None
    if not windows:
        return dict(per_role), total
    first_start, last_due = min(w[0] for w in windows), max(w[1] for w in windows)
    return dict(per_role), (last_due - first_start).total_seconds() / 60


def sla_accuracy(
    scope: AnalyticsScope, *, now: datetime, rows: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Share of stages decided within their SLA in the window, per role, and predicted vs actual durations."""
    rows = stage_aggregates(scope, now=now) if rows is None else rows
    by_role = []
    for role, group in sorted(_group(rows, lambda row: row["required_role"]).items()):
        completed = sum(row["decided"] for row in group)
        if not completed:
            continue
        within = sum(row["within_sla"] for row in group)
        by_role.append(
            {
                "role": role,
                "completed": completed,
                "within_sla": within,
                "share_within_sla": _share(within, completed),
                "mean_minutes": _weighted_mean((_minutes(row["decided_mean"]), row["decided"]) for row in group),
            }
        )
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
    previews = _preview_summaries(scope, now=now)
    predicted_by_role: dict[str, list[float]] = defaultdict(list)
    projections: list[tuple[int, datetime, float]] = []
    for execution_id, occurred_at, payload in previews:
        per_role, ladder_minutes = preview_projection(payload if isinstance(payload, dict) else {})
        for role, values in per_role.items():
            predicted_by_role[role].extend(values)
        if ladder_minutes is not None:
            projections.append((execution_id, occurred_at, ladder_minutes))
    matched = _matched_ladders(projections)
    count = len(matched)
    return {
        "previews": len(previews),
        "previews_with_projection": len(projections),
        "by_role": _predicted_by_role(predicted_by_role, actual_by_role),
        "ladders": {
            "matched": count,
            "mean_predicted_minutes": round(sum(p for p, _ in matched) / count, 1) if count else None,
            "mean_actual_minutes": round(sum(a for _, a in matched) / count, 1) if count else None,
            "mean_absolute_error_minutes": round(sum(abs(a - p) for p, a in matched) / count, 1) if count else None,
            "share_cleared_by_forecast": _share(sum(1 for p, a in matched if a <= p), count),
        },
    }


def _preview_summaries(scope: AnalyticsScope, *, now: datetime) -> list[tuple[int, datetime, Any]]:
    return list(
        ExecutionEvent.objects.filter(
            event_type=EventType.PREVIEW_SUMMARY,
            execution__team_id__in=scope.team_ids,
            occurred_at__gte=window_start(scope, now),
            occurred_at__lte=now,
        )
        .order_by("-occurred_at", "-id")
        .values_list("execution_id", "occurred_at", "payload")[: settings.ANALYTICS_PREVIEW_SAMPLE]
    )


def _matched_ladders(projections: list[tuple[int, datetime, float]]) -> list[tuple[float, float]]:
    """(predicted, actual) minutes of each projection whose execution's next ladder has finalized."""
    if not projections:
        return []
    ladders_by_execution: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
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
    return matched


def _predicted_by_role(
    predicted_by_role: Mapping[str, list[float]], actual_by_role: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    actual = {row["role"]: row for row in actual_by_role}
    rows = []
    for role in sorted(set(predicted_by_role) | set(actual)):
        values = predicted_by_role.get(role, [])
        predicted_mean = round(sum(values) / len(values), 1) if values else None
        actual_mean = actual[role]["mean_minutes"] if role in actual else None
        rows.append(
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
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Blocker trends


def blocker_trends(
    scope: AnalyticsScope, *, now: datetime, rows: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Stages blocking a ladder (started, not yet decided) and how many of them were overdue, at the end of each
    day of the window, in total, per role and per team."""
    rows = stage_aggregates(scope, now=now) if rows is None else rows
    points = trend_points(scope, now=now)
    days = len(points)

    def series(selected: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
        blocking, overdue = [0] * days, [0] * days
        for row in selected:
            for index in range(days):
                blocking[index] += row[f"b{index}"]
                overdue[index] += row[f"o{index}"]
        return {"blocking": blocking, "overdue": overdue}

    def active(group: Sequence[Mapping[str, Any]]) -> bool:
        return any(row[f"b{index}"] for row in group for index in range(days))

    by_role = _group(rows, lambda row: row["required_role"])
    by_team = _group(rows, lambda row: row["team_id"])
    return {
        "days": [label for label, _ in points],
        "total": series(rows),
        "by_role": [{"role": role, **series(group)} for role, group in sorted(by_role.items()) if active(group)],
        "by_team": sorted(
            ({"team": scope.slug_of(team_id), **series(group)} for team_id, group in by_team.items() if active(group)),
            key=lambda entry: entry["team"],
        ),
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


def ladder_load(
    scope: AnalyticsScope, *, now: datetime, rows: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Open (in progress), overdue, escalated and waiting (pending) stages of live ladders and the mean time the
    open ones have been open, per role, assignee and team, and as a roles × teams matrix."""
    rows = stage_aggregates(scope, now=now) if rows is None else rows
    rows = [row for row in rows if row["open"] or row["pending"]]
    alert = settings.ANALYTICS_MEAN_OPEN_ALERT_MINUTES
    assignees = _group((row for row in rows if row["open"]), lambda row: row["assignee__username"])
    matrix = []
    for (role, team_id), group in sorted(_group(rows, lambda row: (row["required_role"], row["team_id"])).items()):
        entry = _load_entry(group)
        over_alert = bool(entry["mean_open_minutes"] and entry["mean_open_minutes"] > alert)
        matrix.append({"role": role, "team": scope.slug_of(team_id), **entry, "over_alert": over_alert})
    return {
        **_load_entry(rows),
        "mean_open_alert_minutes": alert,
        "by_role": [
            {"role": role, **_load_entry(group)}
            for role, group in sorted(_group(rows, lambda row: row["required_role"]).items())
        ],
        "by_team": sorted(
            (
                {"team": scope.slug_of(team_id), **_load_entry(group)}
                for team_id, group in _group(rows, lambda row: row["team_id"]).items()
            ),
            key=lambda entry: entry["team"],
        ),
        "by_assignee": [
            {"assignee": username, **_load_entry(group)}
            for username, group in sorted(assignees.items(), key=lambda item: (item[0] is None, item[0] or ""))
        ],
        "matrix": matrix,
    }


# ---------------------------------------------------------------------------------------------------------------
# Guardrail forecasts


# Columns the stage rows of the dashboard and the forecasts use: keeps wide export columns (the narrative) out of
# the joins.
STAGE_ROW_FIELDS = (
    "id",
    "ladder_id",
    "index",
    "name",
    "required_role",
    "status",
    "due_at",
    "overdue_at",
    "escalated_at",
    "assignee__username",
    "ladder__export__id",
    "ladder__export__version",
    "ladder__export__status",
    "ladder__export__packaging_queue_state",
    "ladder__export__execution_id",
    "ladder__export__execution__title",
    "ladder__export__execution__team__slug",
)


def stage_brief(stage: ApprovalStage) -> dict[str, Any]:
    return {
        "id": stage.pk,
        "name": stage.name,
        "required_role": stage.required_role,
        "assignee": stage.assignee.username if stage.assignee else None,
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
        .only(*STAGE_ROW_FIELDS)
        .order_by("due_at", "id")[:limit]
    )
    forecasts = forecasts_for_ladders((stage.ladder_id for stage in active), now=now)
    rows = []
    for stage in active:
        export = stage.ladder.export
        forecast = forecasts.get(stage.ladder_id)
        guardrail_status = QueueState.from_json(export.packaging_queue_state).status or QueueStatus.AWAITING_APPROVAL
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


def redaction_kpis(scope: AnalyticsScope, *, now: datetime) -> dict[str, Any]:
    """Exports created in the window: how many had something redacted, and what, by type (docs/redaction.md).
    ``over_alert`` when the share reaches ``ANALYTICS_REDACTION_ALERT_SHARE``: sensitive data keeps reaching
    narratives. One query."""
    rows = (
        NarrativeExport.objects.filter(execution__team_id__in=scope.team_ids, created_at__gte=window_start(scope, now))
        .values_list("redaction_counts", "redaction_policy__enabled")
        .iterator()
    )
    exports = with_redactions = unredacted = 0
    by_type: Counter[str] = Counter()
    for counts, enabled in rows:
        exports += 1
        unredacted += enabled is False
        counts = {kind: count for kind, count in (counts or {}).items() if isinstance(count, int) and count > 0}
        with_redactions += bool(counts)
        by_type.update(counts)
    share = _share(with_redactions, exports)
    alert = settings.ANALYTICS_REDACTION_ALERT_SHARE
    return {
        "exports": exports,
        "exports_with_redactions": with_redactions,
        "share_of_exports_with_redactions": share,
        "counts_by_type": dict(sorted(by_type.items())),
        "redactions": sum(by_type.values()),
        "exports_without_redaction": unredacted,
        "alert_share": alert,
        "over_alert": share is not None and share >= alert,
    }


# ---------------------------------------------------------------------------------------------------------------
# Everything


def governance_analytics(scope: AnalyticsScope, *, now: datetime | None = None) -> dict[str, Any]:
    """The four figure families for ``scope``: one pass over the stages, two for previews and their ladders,
    three for guardrail forecasts (a query is skipped when there is nothing to look up)."""
    now = now or timezone.now()
    rows = stage_aggregates(scope, now=now)
    return {
        "scope": {
            "teams": [team.slug for team in scope.teams],
            "window_days": scope.window_days,
            "since": window_start(scope, now),
            "until": now,
        },
        "computed_at": now,
        "sla_accuracy": sla_accuracy(scope, now=now, rows=rows),
        "blocker_trends": blocker_trends(scope, now=now, rows=rows),
        "ladder_load": ladder_load(scope, now=now, rows=rows),
        "guardrail_forecasts": guardrail_forecasts(scope, now=now),
        "redaction": redaction_kpis(scope, now=now),
    }
