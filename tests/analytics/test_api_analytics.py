"""GET /api/governance/analytics: shape, filters, errors, caching with invalidation, isolation, query counts."""

import pytest

from approvals.models import ApprovalStage
from tests.analytics.factories import new_export, set_stage
from tests.factories import PASSWORD, member_of

pytestmark = pytest.mark.django_db
URL = "/api/governance/analytics"


def test_returns_every_figure_family_for_the_viewers_teams(client_for, crew, known, foreign):
    response = client_for(crew.operator).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"scope", "computed_at", "cache", "sla_accuracy", "blocker_trends", "ladder_load"}
    assert body["scope"]["teams"] == ["alpha"] and body["scope"]["window_days"] == 14
    assert body["ladder_load"]["open"] == 3 and body["ladder_load"]["overdue"] == 1
    assert body["sla_accuracy"]["share_within_sla"] == 0.5
    assert len(body["blocker_trends"]["days"]) == 14
    assert {row["team"] for row in body["guardrail_forecasts"]["exports"]} == {"alpha"}
    assert "Beta secret run" not in response.content.decode()


def test_second_call_within_the_ttl_comes_from_the_cache(client_for, crew, known):
    client = client_for(crew.operator)
    first = client.get(URL)
    second = client.get(URL)
    assert first["X-Cache"] == "MISS" and first.json()["cache"]["hit"] is False
    assert second["X-Cache"] == "HIT" and second.json()["cache"]["hit"] is True
    assert second.json()["cache"]["computed_at"] == first.json()["cache"]["computed_at"]
    assert second.json()["cache"]["ttl_seconds"] == 30


def test_an_approval_invalidates_the_cache_and_the_next_call_is_fresh(
    client_for, api_client, crew, known, django_capture_on_commit_callbacks
):
    a, b, c = known
    client = client_for(crew.operator)
    before = client.get(URL).json()
    assert client.get(URL)["X-Cache"] == "HIT"
    review = ApprovalStage.objects.get(ladder__export=c, index=0)
    with django_capture_on_commit_callbacks(execute=True):
        signed = client_for(crew.reviewer).post(
            f"/api/experiment-console/sessions/{c.execution_id}/exports/narrative/{c.pk}/approve",
            {"decision": "approve", "password": PASSWORD, "meaning": "Reviewed", "expected_stage_id": review.pk},
        )
    assert signed.status_code == 200, signed.json()
    after = client_for(crew.operator).get(URL)
    assert after["X-Cache"] == "MISS"
    assert after.json()["sla_accuracy"]["completed"] == before["sla_accuracy"]["completed"] + 1
    assert "reviewer" not in {row["role"] for row in after.json()["ladder_load"]["by_role"]}


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("overrides", {"step": "incubate", "field": "temp_c", "value": 36.5, "reason": "Probe drift"}),
        ("coaching-notes", {"body": "Record the lot number next time."}),
    ],
)
def test_overrides_and_coaching_notes_invalidate_the_cache(
    client_for, crew, known, path, payload, django_capture_on_commit_callbacks
):
    reviewer = crew.reviewer
    client = client_for(crew.operator)
    client.get(URL)
    assert client.get(URL)["X-Cache"] == "HIT"
    actor = crew.operator if path == "overrides" else reviewer
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(actor).post(f"/api/experiment-console/sessions/{known[0].execution_id}/{path}", payload)
    assert response.status_code == 201, response.json()
    assert client_for(crew.operator).get(URL)["X-Cache"] == "MISS"


def test_invalidation_is_per_team(client_for, crew, known, foreign, other_team, django_capture_on_commit_callbacks):
    from governance.signals import team_state_changed

    client = client_for(crew.operator)
    client.get(URL)
    with django_capture_on_commit_callbacks(execute=True):
        team_state_changed.send(sender=None, team_id=other_team.pk, execution_id=None, reason="test")
    assert client.get(URL)["X-Cache"] == "HIT"


def test_cache_is_per_viewer_and_scope(client_for, crew, known, team):
    client_for(crew.operator).get(URL)
    assert client_for(crew.operator).get(URL, {"window": "7"})["X-Cache"] == "MISS"
    # Narrowing to the only team the viewer has is the same scope, hence the same entry.
    assert client_for(crew.operator).get(URL, {"team": "alpha"})["X-Cache"] == "HIT"
    assert client_for(crew.auditor).get(URL)["X-Cache"] == "MISS"


def test_team_filter_and_window(client_for, crew, known, team, other_team):
    member_of(other_team, "operator", username="ops")  # ops now belongs to both teams
    client = client_for(crew.operator)
    assert client.get(URL).json()["scope"]["teams"] == ["alpha", "beta"]
    body = client.get(URL, {"team": "alpha", "window": "7d"}).json()
    assert body["scope"] == {**body["scope"], "teams": ["alpha"], "window_days": 7}
    assert len(body["blocker_trends"]["days"]) == 7


def test_a_user_of_team_a_never_sees_team_b(client_for, crew, known, foreign):
    response = client_for(crew.operator).get(URL, {"team": "beta"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "team_not_found"
    outsider = member_of(foreign.execution.team, "operator", username="beta-ops")
    body = client_for(outsider).get(URL).json()
    assert body["scope"]["teams"] == ["beta"]
    assert {row["export_id"] for row in body["guardrail_forecasts"]["exports"]} == {foreign.pk}
    assert body["ladder_load"]["open"] == 1


@pytest.mark.parametrize("query", [{"window": "0"}, {"window": "abc"}, {"window": "365"}, {"team": "Not A Slug!"}])
def test_bad_input_is_a_400_in_the_error_shape(client_for, crew, query):
    response = client_for(crew.operator).get(URL, query)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_anonymous_is_refused(api_client):
    response = api_client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_user_without_teams_gets_empty_figures(client_for, db):
    from tests.factories import UserFactory

    body = client_for(UserFactory(username="loner")).get(URL).json()
    assert body["scope"]["teams"] == [] and body["ladder_load"]["open"] == 0


@pytest.mark.parametrize("extra", [0, 15])
def test_query_count_is_fixed_whatever_the_row_count(
    client_for, crew, team, snapshot, now, known, extra, django_assert_max_num_queries
):
    for index in range(extra):
        export = new_export(team=team, author=crew.author, snapshot=snapshot, title=f"Extra {index}")
        set_stage(export, 0, now=now, started=-(index + 30), due=-index)
    client = client_for(crew.operator)
    with django_assert_max_num_queries(12):
        assert client.get(URL).status_code == 200
    with django_assert_max_num_queries(3):
        assert client.get(URL)["X-Cache"] == "HIT"


def test_redaction_kpis_over_the_window(client_for, crew, known, foreign, settings):
    from datetime import timedelta

    from django.utils import timezone

    from exports.models import NarrativeExport

    mine = list(NarrativeExport.objects.filter(execution__team__slug="alpha").order_by("pk"))
    NarrativeExport.objects.filter(pk=mine[0].pk).update(redaction_counts={"EMAIL": 2, "OPENAI_KEY": 1})
    NarrativeExport.objects.filter(pk=mine[1].pk).update(redaction_counts={"EMAIL": 1}, redaction_policy={})
    NarrativeExport.objects.filter(pk=mine[2].pk).update(redaction_counts={}, redaction_policy={"enabled": False})
    old = timezone.now() - timedelta(days=40)
    NarrativeExport.objects.filter(pk__in=[e.pk for e in mine[3:]]).update(created_at=old, redaction_counts={"SSN": 9})
    NarrativeExport.objects.filter(pk=foreign.pk).update(redaction_counts={"CARD": 5})
    settings.ANALYTICS_REDACTION_ALERT_SHARE = 0.9

    redaction = client_for(crew.operator).get(URL).json()["redaction"]
    assert redaction["exports"] == 3 and redaction["exports_with_redactions"] == 2
    assert redaction["share_of_exports_with_redactions"] == round(2 / 3, 4)
    assert redaction["counts_by_type"] == {"EMAIL": 3, "OPENAI_KEY": 1} and redaction["redactions"] == 4
    assert redaction["exports_without_redaction"] == 1
    assert redaction["alert_share"] == 0.9 and redaction["over_alert"] is False
