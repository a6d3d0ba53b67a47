"""The operator's dashboard in a real browser: overdue queue, sorting, role filter, Escalate, live refresh."""

from urllib.parse import parse_qs, urlparse

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(team, other_team, settings):
    from governance.choices import RoleKey
    from governance.models import Role
    from tests.analytics.factories import known_exports, new_export, preview_summary, set_stage
    from tests.approvals.factories import crew_for, published_snapshot
    from tests.factories import member_of

    for key, label in RoleKey.choices:  # transactional tests flush the roles the migration seeded
        Role.objects.get_or_create(key=key, defaults={"label": label})
    settings.ANALYTICS_DASHBOARD_REFRESH_SECONDS = 2
    crew = crew_for(team)
    operator = member_of(team, "operator", username="demo-operator")
    snapshot = published_snapshot()
    now = timezone.now()
    a, b, c = known_exports(team=team, author=crew.author, snapshot=snapshot, now=now)
    late_review = new_export(team=team, author=crew.author, snapshot=snapshot, title="Plasmid prep QC")
    set_stage(late_review, 0, now=now, started=-30, due=-6, overdue=-5)
    preview_summary(a.execution, at=now - timezone.timedelta(hours=12))
    foreign_author = member_of(other_team, "scientist", username="beta-author")
    foreign = new_export(team=other_team, author=foreign_author, snapshot=snapshot, title="Beta secret run")
    set_stage(foreign, 0, now=now, started=-40, due=-16)
    return {"crew": crew, "operator": operator, "qa_overdue": b, "review_overdue": late_review, "foreign": foreign}


def queue_ids(page: Page) -> list[str]:
    return page.locator("#overdue-queue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.exportId)")


def test_operator_triages_the_overdue_queue_and_sees_it_change_live(page: Page, live_server, scene):
    qa_overdue, review_overdue = scene["qa_overdue"], scene["review_overdue"]
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("demo-operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Dashboard").click()

    expect(page.get_by_role("heading", name="Governance dashboard")).to_be_visible()
    queue = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Overdue by"))
    expect(queue).to_be_visible()
    # Most overdue first: the review is 6 h late, the QA stage 1 h.
    assert queue_ids(page) == [str(review_overdue.pk), str(qa_overdue.pk)]
    assert str(scene["foreign"].pk) not in queue_ids(page)
    expect(page.get_by_text("Beta secret run")).to_have_count(0)
    screenshots = django_settings.VAR_DIR / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)

    # Sort: least overdue first, then back.
    page.get_by_role("link", name="Overdue by").click()
    expect(page.locator("th[aria-sort='ascending']")).to_contain_text("Overdue by")
    assert queue_ids(page) == [str(qa_overdue.pk), str(review_overdue.pk)]

    # Filter by role.
    page.get_by_label("Role", exact=True).select_option("qa_approver")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#overdue-queue tbody tr")).to_have_count(1)
    assert queue_ids(page) == [str(qa_overdue.pk)]

    # Escalate: a mailto to the escalation address naming the export.
    escalate = page.get_by_role("link", name=f"Escalate export {qa_overdue.pk}, QA approval")
    href = escalate.get_attribute("href")
    link = urlparse(href)
    assert link.scheme == "mailto" and link.path == django_settings.GOVERNANCE_ESCALATION_EMAIL
    fields = parse_qs(link.query)
    assert f"export {qa_overdue.pk} " in fields["subject"][0]
    assert "Role: qa_approver" in fields["body"][0] and "Guardrail forecast:" in fields["body"][0]
    escalate.focus()
    page.keyboard.press("Enter")  # the mail client takes over; the dashboard stays put
    expect(page.get_by_role("heading", name="Governance dashboard")).to_be_visible()

    # The QA stage is approved elsewhere: the dashboard shows it within 30 s, without a reload.
    page.evaluate("window.__sameDocument = true")
    expect(page.locator('[data-kpi="active-breaches"]')).to_have_text("2")
    from approvals.models import ApprovalStage
    from approvals.services.ladders import stage_decide

    stage = ApprovalStage.objects.get(ladder__export=qa_overdue, index=1)
    stage_decide(
        export_id=qa_overdue.pk,
        actor=scene["crew"].qa,
        username=scene["crew"].qa.username,
        decision="approve",
        password=PASSWORD,
        expected_stage_id=stage.pk,
    )
    expect(page.locator("#queue-empty")).to_be_visible(timeout=30_000)
    expect(page.locator('[data-kpi="active-breaches"]')).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#refresh-status")).to_contain_text("Updated")
    page.screenshot(path=str(screenshots / "dashboard-after-approval.png"), full_page=True)


def test_dashboard_is_usable_on_a_phone(page: Page, live_server, scene):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("demo-operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/governance/dashboard")
    expect(page.get_by_role("heading", name="Overdue stage queue")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshots = django_settings.VAR_DIR / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "dashboard-phone.png"), full_page=True)
