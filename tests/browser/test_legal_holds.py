"""In a real browser: a compliance officer places a legal hold in the admin; the export page shows it with the
retention date and mode; releasing it from the admin clears it (docs/records-lifecycle.md)."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_export_signing import ladder, sign_in  # noqa: F401 - the fixture is used by name

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_hold_placed_in_the_admin_shows_on_the_export_page_until_released(page: Page, live_server, ladder):  # noqa: F811
    crew, export = ladder
    crew.compliance.is_staff = True
    crew.compliance.save()
    sign_in(page, live_server.url, "comp")

    page.goto(f"{live_server.url}/admin/exports/legalhold/add/")
    page.get_by_label("Team").select_option(label=export.execution.team.name)
    page.get_by_label("Scope").select_option("export")
    page.get_by_label("Export id").fill(str(export.pk))
    page.get_by_label("Reason").fill("FDA inquiry 2026-114")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    page.goto(f"{live_server.url}/exports/{export.pk}/")
    expect(page.get_by_test_id("retention")).to_contain_text("governance mode")
    expect(page.get_by_test_id("legal-holds")).to_contain_text("On export since")

    from exports.models import LegalHold

    hold = LegalHold.objects.get()
    page.goto(f"{live_server.url}/admin/exports/legalhold/?active=true")
    page.get_by_role("link", name=str(hold.pk), exact=True).click()
    page.get_by_label("Release reason").fill("Inquiry closed")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    page.goto(f"{live_server.url}/exports/{export.pk}/")
    expect(page.get_by_test_id("legal-holds")).to_have_text("none")
