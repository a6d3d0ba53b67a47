"""Every page, as every demo role that can open it, renders under the Content-Security-Policy in chromium.

For each page: the response carries the policy, and the browser reports no CSP violation and no console error
while the page loads and runs (the API docs render their operations, the dashboard swaps its panels once).
One browser context per role, signed in once; the demo data comes from `seed_demo`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urljoin, urlparse

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Browser, BrowserContext, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLES = ("demo-scientist", "demo-reviewer", "demo-approver", "demo-operator", "demo-compliance", "demo-admin")
STAFF = ("demo-compliance", "demo-admin")
# Recorded in the page, across navigations, for every violation the browser reports.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || event.documentURI}:${event.lineNumber} (${event.sample || "no sample"})`);
});
"""


@dataclass
class Visitor:
    """A signed-in browser context that records what went wrong on each page it opens."""

    username: str
    context: BrowserContext
    page: Page
    problems: list[str] = field(default_factory=list)
    current: str = "(sign-in)"

    @classmethod
    def open(cls, browser: Browser, base: str, username: str) -> Visitor:
        context = browser.new_context(base_url=base)
        page = context.new_page()
        visitor = cls(username=username, context=context, page=page)
        context.expose_binding("__reportCspViolation", lambda _source, text: visitor.problem(f"CSP: {text}"))
        context.add_init_script(REPORT_VIOLATIONS)
        page.on("console", lambda message: message.type == "error" and visitor.problem(f"console: {message.text}"))
        page.on("pageerror", lambda error: visitor.problem(f"uncaught: {error}"))
        return visitor

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.username} {self.current}: {text}")

    def visit(self, path: str, *, ready=None) -> Page:
        self.current = path
        response = self.page.goto(path)
        assert response is not None, path
        if response.status != 200:
            self.problem(f"status {response.status}")
        policy = response.headers.get("content-security-policy")
        if not policy:
            self.problem("no Content-Security-Policy header")
        elif "'unsafe-inline'" in policy or "'unsafe-eval'" in policy:
            self.problem(f"policy allows inline code: {policy}")
        if ready is not None:
            ready(self.page)
        return self.page

    def sign_in(self, password: str) -> None:
        page = self.visit("/accounts/login/")
        page.get_by_label("Username").fill(self.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")

    def close(self) -> None:
        self.page.wait_for_timeout(250)  # violation events are delivered asynchronously: let the last one arrive
        self.context.close()

    def links(self, selector: str) -> list[str]:
        hrefs = self.page.locator(selector).evaluate_all("links => links.map(link => link.getAttribute('href'))")
        return list(dict.fromkeys(urlparse(urljoin(self.page.url, href)).path for href in hrefs if href))


# Routes outside the admin and the API that are not pages a browser opens: forms post to them, or the dashboard
# fetches them (its refresh is part of the dashboard's visit), or they redirect.
NOT_PAGES = {
    "favicon.ico",
    "accounts/logout/",
    "exports/<int:export_id>/sign",
    "exports/<int:export_id>/stages/<int:stage_id>/delegate",
    "exports/<int:export_id>/stages/<int:stage_id>/reset",
    "governance/dashboard/panels",
    "governance/dashboard/exports/<int:export_id>/stages/<int:stage_id>/escalations",  # the queue row's form
    "executions/<int:execution_id>/notebook",  # the execution page's forms post here and are redirected back
    "executions/<int:execution_id>/evidence",
    "governance/reports/feed/run",  # the reports card's button posts here and is redirected back
    "governance/reports/feed/latest.ndjson",  # a download, not a page
    "audit-reviews/<int:review_id>/complete",  # the review page's signing form posts here
}


def page_routes() -> set[str]:
    """Every route of the site outside the admin and the API (those are walked from their own indexes)."""
    from django.urls import URLResolver, get_resolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    return {route for route in walk(get_resolver().url_patterns) if not route.startswith(("admin/", "api/"))}


def swagger_rendered(page: Page) -> None:
    """The operations render, and one opens (Swagger UI draws its parameters and examples then)."""
    operation = page.locator(".swagger-ui .opblock").first
    expect(operation).to_be_visible(timeout=20_000)
    operation.locator(".opblock-summary").click()
    expect(operation.locator(".opblock-body")).to_be_visible()


def dashboard_refreshed(page: Page) -> None:
    """The panels are fetched and swapped in once (the script refreshes when the page becomes visible)."""
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("#dashboard-panels[data-refreshed-at]")).to_have_count(1, timeout=15_000)


def admin_pages(visitor: Visitor) -> list[str]:
    """The admin index's links (every changelist and add form the user may see) and one change form each."""
    visitor.visit("/admin/")
    lists = visitor.links("#content-main a[href$='/']:not([href$='/add/'])")
    adds = visitor.links("#content-main a.addlink")
    changes = []
    for changelist in lists:
        visitor.visit(changelist)
        changes += visitor.links("#result_list tbody tr th a, #result_list tbody tr td a")[:1]
    for path in adds + changes:
        visitor.visit(path)
    return lists + adds + changes


@pytest.fixture
def demo(settings):
    from django.core.management import call_command

    from approvals.models import ApprovalLadder
    from exports.models import Execution

    settings.ANALYTICS_DASHBOARD_REFRESH_SECONDS = 1
    call_command("seed_demo", stdout=io.StringIO())
    open_ladder = ApprovalLadder.objects.filter(export__execution__team__slug="biolabs", status="in_progress").first()
    from django.utils import timezone

    from approvals.services.audit_reviews import audit_reviews_schedule, month_period

    start, end = month_period(timezone.now())  # this month's review, as its first run after the month opens it
    reviews = audit_reviews_schedule(now=end + timedelta(minutes=1), period_start=start).opened
    return {
        "export": open_ladder.export_id,
        "execution": Execution.objects.filter(team__slug="biolabs").order_by("id").first().pk,
        "review": reviews[0].pk,
    }


def test_every_page_renders_under_the_content_security_policy(browser: Browser, live_server, demo):
    password = django_settings.DEMO_PASSWORD
    export, execution = demo["export"], demo["execution"]
    pages = [
        ("/", None),
        ("/exports/", None),
        (f"/exports/{export}/", None),
        (f"/exports/executions/{execution}/preview", None),
        (f"/executions/{execution}/", None),
        (f"/executions/{execution}/exports/new", None),
        ("/governance/dashboard", dashboard_refreshed),
        ("/governance/reports", None),
        ("/accounts/preferences/", None),
        ("/accounts/password/", None),
        ("/account/signature-certification", None),
        ("/audit-reviews/", None),
        (f"/audit-reviews/{demo['review']}/", None),
        ("/api/docs/", swagger_rendered),
        ("/api/experiment-console/sessions", None),  # the browsable API, with its POST form
        (f"/api/experiment-console/sessions/{execution}", None),
    ]
    from django.urls import resolve

    # A new page fails this test until it is added to the walk (or, when it is not a page, to NOT_PAGES).
    walked = {resolve(path).route for path, _ in pages} | {"accounts/login/", "metrics"}
    assert page_routes() - NOT_PAGES <= walked, "pages missing from the walk"

    problems: list[str] = []
    admin_seen: dict[str, list[str]] = {}

    for username in ROLES:
        visitor = Visitor.open(browser, live_server.url, username)
        visitor.sign_in(password)  # the login page is checked too, before signing in
        for path, ready in pages:
            visitor.visit(path, ready=ready)
        if username in STAFF:
            visitor.visit("/metrics")
            admin_seen[username] = admin_pages(visitor)
        visitor.close()
        problems += visitor.problems

    assert problems == [], "\n".join(problems)
    # The walk really reached the admin: every model for the superuser, read-only curation for compliance.
    assert len(admin_seen["demo-admin"]) > 20
    assert any("/change/" in path for path in admin_seen["demo-compliance"])
