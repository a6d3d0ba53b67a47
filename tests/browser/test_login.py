import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_signs_in_and_reaches_the_api_docs(page: Page, live_server, member):
    member("operator", username="night-operator")
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill("night-operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    expect(page.get_by_text("Alpha Lab")).to_be_visible()
    page.get_by_role("link", name="API documentation").click()
    expect(page.locator(".swagger-ui")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("Dossier API").first).to_be_visible()


def test_wrong_password_is_explained(page: Page, live_server, member):
    member("operator", username="night-operator")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("night-operator")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("did not match")


def test_pages_load_nothing_from_other_hosts(page: Page, live_server, member):
    member("operator", username="night-operator")
    foreign: list[str] = []
    page.on("request", lambda request: foreign.append(request.url) if live_server.url not in request.url else None)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("night-operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui")).to_be_visible(timeout=15_000)
    assert [url for url in foreign if not url.startswith("data:")] == []
