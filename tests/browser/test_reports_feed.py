"""The reports page's governance feed card in a real browser: figures, then the operator runs the feed."""

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(team, settings, tmp_path):
    from django.utils import timezone

    from governance.feed_registry import feed_event_types
    from governance.models import AuditEvent
    from tests.analytics.factories import known_exports
    from tests.approvals.factories import crew_for, published_snapshot
    from tests.factories import member_of

    settings.DOSSIER_FEED_FILE_PATH = str(tmp_path / "feed.ndjson")
    crew = crew_for(team)
    member_of(team, "operator", username="demo-operator")
    known_exports(team=team, author=crew.author, snapshot=published_snapshot(), now=timezone.now())
    sequences = list(AuditEvent.objects.filter(action__in=list(feed_event_types())).values_list("sequence", flat=True))
    return sequences


def test_operator_sees_the_feed_lag_and_runs_the_feed(page: Page, live_server, scene):
    sequences = scene
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("demo-operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/governance/reports")

    card = page.locator("#feed-card")
    expect(card.get_by_role("heading", name="Governance event feed")).to_be_visible()
    expect(card.locator('[data-feed="cursor"]')).to_have_text("0")
    expect(card.locator('[data-feed="lag"]')).to_contain_text(f"{len(sequences)} events")
    expect(card.locator('[data-feed="last-run"]')).to_have_text("never")

    card.get_by_role("button", name="Run the feed now").click()
    expect(page.get_by_role("status")).to_contain_text("Feed run succeeded")
    expect(card.locator('[data-feed="cursor"]')).to_have_text(str(sequences[-1]))
    expect(card.locator('[data-feed="rows"]')).to_have_text(str(len(sequences)))
    expect(card.locator('[data-feed="lag"]')).to_have_text("0 events")
    expect(card.locator('[data-feed="outcome"]')).to_have_text("Succeeded")
