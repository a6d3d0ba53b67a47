"""The dashboard page, its refreshable panels and the reports page."""

from urllib.parse import parse_qs, unquote, urlparse

import pytest
from django.test import Client

from approvals.models import ApprovalStage
from exports.models import PackagingRun
from tests.analytics.factories import new_export, set_stage

pytestmark = pytest.mark.django_db
DASHBOARD = "/governance/dashboard"
PANELS = "/governance/dashboard/panels"


@pytest.fixture
def browser_for():
    def login(user):
        client = Client()
        client.force_login(user)
        return client

    return login


def queue_export_ids(html: str) -> list[int]:
    import re

    return [int(value) for value in re.findall(r'<tr class="breach[^"]*" data-export-id="(\d+)"', html)]


def test_dashboard_shows_the_overdue_queue_and_every_panel(browser_for, crew, known, foreign):
    a, b, c = known
    response = browser_for(crew.operator).get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert queue_export_ids(html) == [b.pk]
    for heading in ("Overdue stage queue", "Role pressure", "Overdue volume", "Guardrail status", "Active breaches"):
        assert heading in html
    assert 'data-kpi="active-breaches">1<' in html
    assert "<svg" in html and 'role="img"' in html
    assert 'data-refresh-seconds="15"' in html
    assert "Beta secret run" not in html and f"#{foreign.pk}<" not in html


def test_escalate_is_a_mailto_naming_the_export(browser_for, crew, known, settings):
    settings.GOVERNANCE_ESCALATION_EMAIL = "night-desk@example.org"
    a, b, c = known
    html = browser_for(crew.operator).get(DASHBOARD).content.decode()
    start = html.index('href="mailto:')
    href = html[start + 6 : html.index('"', start + 6)].replace("&amp;", "&")
    link = urlparse(href)
    assert link.scheme == "mailto" and link.path == "night-desk@example.org"
    query = parse_qs(link.query)
    assert f"export {b.pk} " in query["subject"][0]
    body = unquote(query["body"][0])
    assert "Role: qa_approver" in body and "Detected: " in body and "Guardrail forecast: " in body


def test_queue_sorts_filters_and_paginates(browser_for, crew, team, snapshot, now, known, settings):
    settings.ANALYTICS_QUEUE_PAGE_SIZE = 2
    late = []
    for index, hours_late in enumerate((5, 50, 20)):
        export = new_export(team=team, author=crew.author, snapshot=snapshot, title=f"Late {index}")
        set_stage(export, 0, now=now, started=-(hours_late + 24), due=-hours_late)
        late.append(export)
    client = browser_for(crew.operator)
    html = client.get(DASHBOARD).content.decode()
    assert queue_export_ids(html) == [late[1].pk, late[2].pk]
    assert "Page 1 of 2" in html
    assert queue_export_ids(client.get(DASHBOARD, {"page": 2}).content.decode()) == [late[0].pk, known[1].pk]
    assert queue_export_ids(client.get(DASHBOARD, {"sort": "overdue"}).content.decode()) == [known[1].pk, late[0].pk]
    by_role = client.get(DASHBOARD, {"role": "qa_approver"}).content.decode()
    assert queue_export_ids(by_role) == [known[1].pk]
    assert 'aria-sort="descending"' in html
    assert queue_export_ids(client.get(DASHBOARD, {"sort": "bogus"}).content.decode()) == [late[1].pk, late[2].pk]


def test_panels_fragment_is_the_panels_alone(browser_for, crew, known):
    response = browser_for(crew.operator).get(PANELS, {"role": "qa_approver"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert "<html" not in html and 'data-panel="queue"' in html
    assert queue_export_ids(html) == [known[1].pk]


def test_panels_reflect_an_approval_at_once(browser_for, crew, known, django_capture_on_commit_callbacks):
    from approvals.services.ladders import stage_decide
    from tests.factories import PASSWORD

    client = browser_for(crew.operator)
    assert 'data-kpi="active-breaches">1<' in client.get(PANELS).content.decode()
    stage = ApprovalStage.objects.get(ladder__export=known[1], index=1)
    with django_capture_on_commit_callbacks(execute=True):
        stage_decide(
            export_id=known[1].pk,
            actor=crew.qa,
            decision="approve",
            password=PASSWORD,
            expected_stage_id=stage.pk,
            username=crew.qa.username,
        )
    html = client.get(PANELS).content.decode()
    assert 'data-kpi="active-breaches">0<' in html and queue_export_ids(html) == []


def test_team_filter_never_reaches_a_foreign_team(browser_for, crew, known, foreign):
    client = browser_for(crew.operator)
    assert client.get(DASHBOARD, {"team": "beta"}).status_code == 404
    assert client.get(PANELS, {"team": "beta"}).status_code == 404
    outsider_html = browser_for(foreign.execution.owner).get(DASHBOARD).content.decode()
    assert queue_export_ids(outsider_html) == [foreign.pk]
    assert "Beta secret run" in outsider_html and 'data-export-id="' + str(known[1].pk) + '"' not in outsider_html


def test_dashboard_needs_a_sign_in(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("extra", [0, 30])
def test_dashboard_query_count_is_fixed(
    browser_for, crew, team, snapshot, now, known, extra, django_assert_max_num_queries
):
    for index in range(extra):
        export = new_export(team=team, author=crew.author, snapshot=snapshot, title=f"Extra {index}")
        set_stage(export, 0, now=now, started=-(index + 30), due=-index - 1)
    client = browser_for(crew.operator)
    with django_assert_max_num_queries(20):
        assert client.get(DASHBOARD).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(PANELS).status_code == 200


def test_reports_page_shows_queue_health_and_failures(browser_for, crew, known, now):
    PackagingRun.objects.create(
        export=known[0], attempt=1, status="retrying", started_at=now, error_code="storage_unavailable"
    )
    PackagingRun.objects.create(
        export=known[0], attempt=2, status="failed", started_at=now, error_code="internal_error"
    )
    html = browser_for(crew.operator).get("/governance/reports").content.decode()
    assert "Failures by error code" in html and "storage_unavailable" in html and "internal_error" in html
    assert "Recent packaging runs" in html
    staff = crew.admin
    staff.is_staff = True
    staff.save()
    staff_html = browser_for(staff).get("/governance/reports").content.decode()
    assert "/admin/exports/packagingrun/" in staff_html and 'href="/metrics"' in staff_html


def test_navigation_links_to_dashboard_and_reports(browser_for, crew):
    html = browser_for(crew.operator).get("/").content.decode()
    assert 'href="/governance/dashboard"' in html and 'href="/governance/reports"' in html


def test_the_redaction_tile_is_highlighted_at_the_alert_share(browser_for, crew, known, settings):
    from exports.models import NarrativeExport

    NarrativeExport.objects.filter(execution__team__slug="alpha").update(redaction_counts={"EMAIL": 1})
    settings.ANALYTICS_REDACTION_ALERT_SHARE = 0.5
    page = browser_for(crew.operator).get("/governance/dashboard").content.decode()
    tile = page[page.index('id="kpi-redaction"') - 40 : page.index('id="kpi-redaction"') + 700]
    assert "kpi-warn" in tile and "100 %" in tile and "EMAIL" in tile
