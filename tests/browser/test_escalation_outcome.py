"""Closing the escalation loop on the dashboard: the operator records an outcome in the overdue queue's row, the
live refresh leaves the open form alone, and the row then shows the last escalation."""

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.browser.test_dashboard import scene  # noqa: F401 - the dashboard's overdue queue, as a fixture
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_records_an_escalation_outcome_from_the_queue_row(page: Page, live_server, scene):  # noqa: F811
    from exports.models import ExecutionEvent

    late = scene["review_overdue"]
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("demo-operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/governance/dashboard")

    row = page.locator(f'#overdue-queue tr[data-export-id="{late.pk}"]')
    row.get_by_text("Record outcome").click()
    row.get_by_label("Contacted").fill("rev, by phone")
    row.get_by_label("Outcome:", exact=True).select_option("blocked")
    check = (timezone.now() + timezone.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    row.get_by_label("Next check (UTC)").fill(check)
    # The panels refresh every 2 s here; an open form is left as typed.
    expect(page.locator("#refresh-status")).to_contain_text("wait while you record", timeout=10_000)
    expect(row.get_by_label("Contacted")).to_have_value("rev, by phone")
    row.get_by_role("button", name="Record").click()

    expect(page.locator(".message.success")).to_contain_text(f"Escalation outcome recorded for export {late.pk}")
    row = page.locator(f'#overdue-queue tr[data-export-id="{late.pk}"]')
    expect(row.get_by_test_id("last-escalation")).to_contain_text("Blocked: waiting on something else")
    expect(row.get_by_test_id("last-escalation")).to_contain_text("rev, by phone")
    event = ExecutionEvent.objects.get(execution=late.execution, event_type="governance.escalation.recorded")
    assert event.payload["outcome"] == "blocked" and event.actor.username == "demo-operator"
