"""Analytics figures on known data, team scoping, and a query count that does not grow with the data."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.governance import (
    analytics_scope,
    blocker_trends,
    governance_analytics,
    guardrail_forecasts,
    ladder_load,
    parse_window,
    preview_projection,
    sla_accuracy,
    trend_points,
)
from approvals.models import ApprovalStage
from config.errors import NotFound, ValidationFailed
from tests.analytics.factories import finalize, hours, new_export, preview_summary, set_stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def scope(crew, known, foreign):
    return analytics_scope(user=crew.operator)


def by(rows, key, value):
    return next(row for row in rows if row[key] == value)


def test_sla_accuracy_counts_decided_stages_within_their_sla(scope, now):
    figures = sla_accuracy(scope, now=now)
    assert figures["completed"] == 2 and figures["within_sla"] == 1
    assert figures["share_within_sla"] == 0.5
    assert figures["mean_minutes"] == 1050.0
    reviewer = by(figures["by_role"], "role", "reviewer")
    assert reviewer == {
        "role": "reviewer",
        "completed": 2,
        "within_sla": 1,
        "share_within_sla": 0.5,
        "mean_minutes": 1050.0,
    }


def test_ladder_load_per_role_assignee_team_and_matrix(scope, now, crew, known):
    a, b, c = known
    ApprovalStage.objects.filter(ladder__export=b, index=1).update(assignee=crew.qa)
    load = ladder_load(scope, now=now)
    assert (load["open"], load["overdue"], load["escalated"]) == (3, 1, 1)
    assert load["mean_open_minutes"] == 340.0
    qa = by(load["by_role"], "role", "qa_approver")
    assert (qa["open"], qa["overdue"], qa["pending"], qa["mean_open_minutes"]) == (2, 1, 1, 450.0)
    assert by(load["by_role"], "role", "compliance")["pending"] == 3
    assert by(load["by_role"], "role", "reviewer")["mean_open_minutes"] == 120.0
    assert by(load["by_assignee"], "assignee", "qa") == {
        "assignee": "qa",
        "open": 1,
        "overdue": 1,
        "escalated": 1,
        "pending": 0,
        "mean_open_minutes": 600.0,
    }
    assert by(load["by_assignee"], "assignee", None)["open"] == 2
    assert [entry["team"] for entry in load["by_team"]] == ["alpha"]
    cell = next(c for c in load["matrix"] if c["role"] == "qa_approver")
    assert cell["team"] == "alpha" and cell["over_alert"] is True
    reviewer_cell = next(c for c in load["matrix"] if c["role"] == "reviewer")
    assert reviewer_cell["mean_open_minutes"] == 120.0 and reviewer_cell["over_alert"] is True


def test_blocker_trends_match_a_direct_count(scope, now, known):
    trends = blocker_trends(scope, now=now)
    points = trend_points(scope, now=now)
    assert trends["days"] == [label for label, _ in points] and len(points) == 14
    stages = list(ApprovalStage.objects.filter(ladder__export__execution__team__slug="alpha"))
    for index, (_, moment) in enumerate(points):
        open_then = [
            s
            for s in stages
            if s.started_at and s.started_at <= moment and not (s.completed_at and s.completed_at <= moment)
        ]
        assert trends["total"]["blocking"][index] == len(open_then)
        assert trends["total"]["overdue"][index] == len([s for s in open_then if s.due_at < moment])
    assert trends["total"]["blocking"][-1] == 3 and trends["total"]["overdue"][-1] == 1
    qa = by(trends["by_role"], "role", "qa_approver")
    assert qa["overdue"][-1] == 1
    assert [row["team"] for row in trends["by_team"]] == ["alpha"]


def test_guardrail_forecasts_most_urgent_first(scope, now, known):
    a, b, c = known
    forecasts = guardrail_forecasts(scope, now=now)
    assert forecasts["blocked"] == 3
    assert [row["export_id"] for row in forecasts["exports"]] == [b.pk, c.pk, a.pk]
    first = forecasts["exports"][0]
    assert first["overdue"] is True and first["pending_stage"]["required_role"] == "qa_approver"
    # Overdue QA stage: clears "now" at best, then compliance's 72 h.
    assert abs(first["forecast"] - (now + hours(72))) < timedelta(seconds=1)
    assert first["guardrail_status"] == "awaiting_approval" and first["guardrail_label"] == "Awaiting approval"
    # c: review due in 22 h, then QA 48 h and compliance 72 h.
    assert abs(forecasts["exports"][1]["forecast"] - (now + hours(22 + 48 + 72))) < timedelta(seconds=1)


def test_predicted_vs_actual_without_previews(scope, now):
    fused = sla_accuracy(scope, now=now)["predicted_vs_actual"]
    assert fused["previews"] == 0
    assert fused["ladders"] == {
        "matched": 0,
        "mean_predicted_minutes": None,
        "mean_actual_minutes": None,
        "mean_absolute_error_minutes": None,
        "share_cleared_by_forecast": None,
    }
    reviewer = by(fused["by_role"], "role", "reviewer")
    assert reviewer["predicted_minutes"] is None and reviewer["actual_minutes"] == 1050.0


def test_predicted_vs_actual_fuses_preview_summaries_with_ladders(team, crew, snapshot, now):
    export = new_export(team=team, author=crew.author, snapshot=snapshot, title="Previewed")
    preview_summary(export.execution, at=now - hours(100), stage_hours=(24, 48, 72))
    # Previewed before the ladder it predicts: move the ladder after the preview and finish it in 30 h.
    finalize(export, created=now - hours(90), finalized=now - hours(60))
    other = new_export(team=team, author=crew.author, snapshot=snapshot, title="Previewed, still open")
    preview_summary(other.execution, at=now - hours(10), stage_hours=(12, 12, 12))
    scope = analytics_scope(user=crew.operator)
    fused = sla_accuracy(scope, now=now)["predicted_vs_actual"]
    assert fused["previews"] == 2 and fused["previews_with_projection"] == 2
    reviewer = by(fused["by_role"], "role", "reviewer")
    assert reviewer["predicted_minutes"] == (24 * 60 + 12 * 60) / 2
    assert reviewer["previewed_stages"] == 2
    ladders = fused["ladders"]
    # Only the finished ladder is matched; the open one created after its preview has no actual yet.
    assert ladders["matched"] == 1
    assert ladders["mean_predicted_minutes"] == 144 * 60.0
    assert ladders["mean_actual_minutes"] == 30 * 60.0
    assert ladders["mean_absolute_error_minutes"] == 114 * 60.0
    assert ladders["share_cleared_by_forecast"] == 1.0


def test_preview_projection_tolerates_partial_payloads():
    assert preview_projection({}) == ({}, None)
    assert preview_projection({"stages": "nope"}) == ({}, None)
    per_role, total = preview_projection({"ladder": {"stages": [{"required_role": "reviewer", "sla_hours": 2}, 7]}})
    assert per_role == {"reviewer": [120.0]} and total == 120.0
    assert preview_projection({"stages": [{"required_role": "qa", "projected_due": "garbage"}]}) == ({}, None)


def test_scope_is_the_viewers_teams_and_a_foreign_team_is_not_found(crew, known, foreign, other_team):
    scope = analytics_scope(user=crew.operator)
    assert [team.slug for team in scope.teams] == ["alpha"]
    with pytest.raises(NotFound):
        analytics_scope(user=crew.operator, team_slug="beta")
    figures = governance_analytics(scope)
    exports = {row["export_id"] for row in figures["guardrail_forecasts"]["exports"]}
    assert foreign.pk not in exports
    assert figures["scope"]["teams"] == ["alpha"]
    assert figures["ladder_load"]["overdue"] == 1  # beta's overdue review is not counted


@pytest.mark.parametrize("value", ["0", "91", "x", "-3", "7w"])
def test_window_is_validated(value):
    with pytest.raises(ValidationFailed):
        parse_window(value)


def test_window_accepts_days():
    assert parse_window("7d") == 7 and parse_window(30) == 30 and parse_window(None) == 14


def _count_queries(scope, now) -> int:
    with CaptureQueriesContext(connection) as captured:
        governance_analytics(scope, now=now)
    return len(captured)


def test_query_count_does_not_grow_with_the_data(team, crew, snapshot, now, known):
    export = new_export(team=team, author=crew.author, snapshot=snapshot)
    preview_summary(export.execution, at=now - hours(3))
    scope = analytics_scope(user=crew.operator)
    small = _count_queries(scope, now)
    for index in range(12):
        more = new_export(team=team, author=crew.author, snapshot=snapshot, title=f"More {index}")
        preview_summary(more.execution, at=now - hours(2))
        set_stage(more, 0, now=now, started=-(index + 30), due=-index)
    assert _count_queries(scope, now) == small
    assert small <= 8
