"""Server-rendered pages: the governance dashboard (with its refreshable panels), the operators' reports page
and the Prometheus scrape endpoint. Thin: each builds its context from selectors and renders."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from analytics.cache import governance_analytics_cached
from analytics.charts import trend_chart
from analytics.escalation import escalation_mailto
from analytics.forms import EscalationOutcomeForm
from analytics.governance import AnalyticsScope, analytics_scope
from analytics.metrics import metrics_auth_failure, metrics_response
from analytics.selectors import overdue_stage_queue, role_choices
from approvals.selectors import governance_export_get_for_user
from approvals.services.audit_reviews import overdue_audit_reviews
from approvals.services.escalations import ESCALATION_ROLES, escalation_record
from config.errors import DossierError, NotFound, ValidationFailed
from exports.choices import ExportStatus
from exports.feed.status import feed_chunk_lines, governance_feed_status, is_feed_operator
from exports.selectors.narrative_exports import packaging_jobs_summary
from exports.tasks import export_governance_events
from governance.models import Membership, Team

WINDOW_CHOICES = (7, 14, 30)
OVERDUE_REVIEWS_SHOWN = 10
logger = logging.getLogger(__name__)


def _scope(request: HttpRequest) -> AnalyticsScope:
    window = request.GET.get("window") or None
    try:
        return analytics_scope(user=request.user, team_slug=request.GET.get("team") or None, window=window)
    except NotFound:
        raise Http404("No such team among your teams.") from None
    except ValidationFailed:
        return analytics_scope(user=request.user, team_slug=request.GET.get("team") or None)


def _filters(request: HttpRequest, scope: AnalyticsScope, roles: list[tuple[str, str]]) -> dict[str, Any]:
    role = request.GET.get("role") or ""
    return {
        "team": request.GET.get("team") or "",
        "role": role if role in {key for key, _ in roles} else "",
        "window": scope.window_days,
        "sort": request.GET.get("sort") or "",
    }


def _query(filters: dict[str, Any], **changes: Any) -> str:
    merged = {**filters, **changes}
    return urlencode({key: value for key, value in merged.items() if value not in ("", None)})


QUEUE_COLUMNS = (
    ("export", "Export"),
    ("team", "Team"),
    ("stage", "Stage"),
    ("role", "Role"),
    ("assignee", "Assignee"),
    ("due", "Due (UTC)"),
    ("overdue", "Overdue by"),
)


def _sort_headers(filters: dict[str, Any], current: str) -> list[dict[str, str]]:
    """Column headers of the queue: a link that sorts by the column (reversing it when already sorted by it)."""
    headers = []
    descending = current.startswith("-")
    for key, title in QUEUE_COLUMNS:
        active = current.removeprefix("-") == key
        next_sort = (key if descending else f"-{key}") if active else ("-overdue" if key == "overdue" else key)
        headers.append(
            {
                "key": key,
                "title": title,
                "query": _query(filters, sort=next_sort, page=""),
                "aria": ("descending" if descending else "ascending") if active else "none",
            }
        )
    return headers


def _queue_rows(request: HttpRequest, queue_rows) -> list[dict[str, Any]]:
    """The overdue queue's rows with what the viewer may do on each (escalate, write, record an outcome)."""
    escalating_teams = set(
        Membership.objects.filter(user=request.user.pk, role__key__in=ESCALATION_ROLES).values_list(
            "team__slug", flat=True
        )
    )
    return [
        {
            "row": row,
            "may_escalate": row.export.execution.team.slug in escalating_teams,
            "mailto": escalation_mailto(
                row, export_url=request.build_absolute_uri(reverse("approvals:export-detail", args=[row.export.pk]))
            ),
            "outcome_form": EscalationOutcomeForm(prefix=f"e{row.stage.pk}"),
        }
        for row in queue_rows
    ]


def _pressure(load: dict[str, Any], scope) -> dict[str, Any]:
    """The ladder-load matrix as rows of roles by columns of the scope's teams."""
    team_slugs = [team.slug for team in scope.teams]
    role_keys = sorted({cell["role"] for cell in load["matrix"]})
    cells = {(cell["role"], cell["team"]): cell for cell in load["matrix"]}
    return {
        "teams": team_slugs,
        "rows": [{"role": role, "cells": [cells.get((role, slug)) for slug in team_slugs]} for role in role_keys],
        "max_open": max([cell["open"] for cell in load["matrix"]] or [0]),
    }


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    scope = _scope(request)
    roles = role_choices()
    filters = _filters(request, scope, roles)
    now = timezone.now()
    analytics = governance_analytics_cached(user=request.user, scope=scope)
    queue = overdue_stage_queue(
        scope, now=now, role=filters["role"] or None, sort=filters["sort"] or None, page=request.GET.get("page") or 1
    )
    data = analytics.data
    trends = data["blocker_trends"]
    return {
        "now": now,
        "scope": scope,
        "all_teams": _all_teams(request),
        "roles": roles,
        "filters": filters,
        "window_choices": WINDOW_CHOICES,
        "analytics": data,
        "cache": analytics.cache_info(now=now),
        "queue": queue,
        "queue_rows": _queue_rows(request, queue.rows),
        "sort_headers": _sort_headers(filters, queue.sort),
        "page_queries": {
            "previous": _query(filters, sort=queue.sort, page=queue.page.previous_page_number())
            if queue.page.has_previous()
            else "",
            "next": _query(filters, sort=queue.sort, page=queue.page.next_page_number())
            if queue.page.has_next()
            else "",
        },
        "pressure": _pressure(data["ladder_load"], scope),
        "chart": trend_chart(trends["days"], trends["total"]["overdue"], trends["total"]["blocking"]),
        "alert_minutes": settings.ANALYTICS_MEAN_OPEN_ALERT_MINUTES,
        "refresh_seconds": settings.ANALYTICS_DASHBOARD_REFRESH_SECONDS,
        "panels_query": _query(filters, sort=queue.sort, page=queue.page.number),
        # Annex 11 section 9 (docs/part11.md): audit-trail reviews past their due date, in the viewer's teams.
        "overdue_reviews": list(overdue_audit_reviews(user=request.user, now=now)[:OVERDUE_REVIEWS_SHOWN]),
    }


def _all_teams(request: HttpRequest) -> list:
    """Every team of the viewer, for the team filter (the scope may already be narrowed to one)."""
    return list(Team.objects.visible_to(request.user).order_by("slug").values_list("slug", "name"))


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "analytics/dashboard.html", dashboard_context(request))


@require_GET
@login_required
def dashboard_panels(request: HttpRequest) -> HttpResponse:
    """The dashboard's panels alone, fetched by static/js/dashboard.js every few seconds."""
    response = render(request, "analytics/_panels.html", dashboard_context(request))
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def escalation_outcome(request: HttpRequest, export_id: int, stage_id: int) -> HttpResponse:
    """The queue row's form: record what came of an escalation (the API's service), then back to the queue."""
    form = EscalationOutcomeForm(request.POST, prefix=f"e{stage_id}")
    back = reverse("analytics:dashboard")
    query = QueryDict(request.POST.get("query", "")).urlencode()
    if query:
        back = f"{back}?{query}"
    if not form.is_valid():
        problems = "; ".join(
            f"{form.fields[name].label or name}: {' '.join(str(error) for error in errors)}"
            for name, errors in form.errors.items()
        )
        messages.error(request, f"The escalation outcome was not recorded: {problems}")
        return redirect(back)
    try:
        export = governance_export_get_for_user(user=request.user, export_id=export_id)
        escalation_record(export_id=export.pk, actor=request.user, stage_id=stage_id, **form.cleaned_data)
    except NotFound:
        raise Http404("No such export among your teams.") from None
    except DossierError as exc:
        messages.error(request, f"The escalation outcome was not recorded: {exc.message}")
    else:
        messages.success(request, f"Escalation outcome recorded for export {export.pk}.")
    return redirect(back)


@require_GET
@login_required
def reports(request: HttpRequest) -> HttpResponse:
    jobs = packaging_jobs_summary(user=request.user)
    failures = sorted(jobs["failures_by_error_code"].items(), key=lambda item: (-item[1], item[0]))
    return render(
        request,
        "analytics/reports.html",
        {
            "jobs": jobs,
            "status_counts": [(label, jobs["counts"].get(value, 0)) for value, label in ExportStatus.choices],
            "failures": failures,
            "failure_total": sum(count for _, count in failures),
            "recent_failures": [run for run in jobs["recent_runs"] if run["error_code"]],
            "metrics_visible": request.user.is_staff,
            "feed": governance_feed_status(),
            "feed_operator": is_feed_operator(request.user),
        },
    )


@require_POST
@login_required
def feed_run(request: HttpRequest) -> HttpResponse:
    """Run the governance event feed now (the hourly task, queued), for staff and operators."""
    if not is_feed_operator(request.user):
        raise PermissionDenied
    try:
        outcome = export_governance_events.delay()
    except Exception:  # the broker is down: nothing was changed, say so
        logger.exception("the governance feed run could not be queued")
        messages.error(request, "The feed run could not be queued: the task broker is unavailable.")
    else:
        if outcome.ready() and outcome.successful():
            result = outcome.result
            messages.success(
                request, f"Feed run {result['outcome']}: {result['exported']} event(s), cursor {result['cursor']}."
            )
        else:
            messages.success(request, "Feed run queued; the figures update when it has run.")
    return redirect("analytics:reports")


@require_GET
@login_required
def feed_latest_chunk(request: HttpRequest) -> StreamingHttpResponse:
    """The NDJSON rows the latest feed run delivered; superusers only, since they span every team (a staff curator
    is still scoped to their own teams)."""
    if not request.user.is_superuser:
        raise PermissionDenied
    chunk = governance_feed_status().chunk
    if chunk is None:
        raise Http404("The feed has not delivered anything yet.")
    response = StreamingHttpResponse(feed_chunk_lines(chunk), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="governance-events-{chunk.after + 1}-{chunk.until}.ndjson"'
    return response


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition, derived from the database at scrape time (right across every process)."""
    refusal = metrics_auth_failure(request)
    if refusal is not None:
        return refusal
    return metrics_response()
