"""Every page, as every demo role, reads like a finished product at a desktop and a phone width (docs/pages.md).

For each page in PAGES, signed in as each demo role, at 1366 px and at 390 px wide:
- nothing is wider than the viewport (``document.documentElement.scrollWidth``): wide tables scroll inside their
  wrapper, everything else reflows;
- no status, decision, action, role or event type reaches the visible text as its stored code: codes written
  with ``_`` or ``.`` (``awaiting_approval``, ``narrative_export.created``) nowhere in ``document.body.innerText``,
  and the one-word ones (``approved``, ``pending``) never as a visible text of their own;
- axe-core reports no serious or critical accessibility violation: at the desktop width for every role, and at
  the phone width as the role that sees the most of each page (the admin; the anonymous pages as anonymous).
  The phone layout is the same document restyled and axe checks the document, so a role's phone run repeated
  its desktop findings at the cost of a second full audit; the width checks above still run for every role.

The pages come from the demo data (``seed_demo``): add a page by adding a ``SweptPage`` to PAGES, with ``{name}``
placeholders from ``demo_ids``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings as django_settings
from playwright.sync_api import Browser, Page, expect

from config.labels import raw_codes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLES = ("demo-scientist", "demo-reviewer", "demo-approver", "demo-operator", "demo-compliance", "demo-admin")
WIDTHS = (1366, 390)
SERIOUS = {"serious", "critical"}


@dataclass(frozen=True)
class SweptPage:
    name: str
    path: str  # with {placeholders} from demo_ids()
    status: int = 200
    roles: tuple[str, ...] = ROLES


PAGES = [
    SweptPage("home", "/"),
    SweptPage("exports list", "/exports/"),
    SweptPage("exports list, filtered", "/exports/?status=awaiting_approval&overdue=true&q=lot"),
    SweptPage("export awaiting approval (the sign page)", "/exports/{awaiting}/"),
    SweptPage("export overdue", "/exports/{overdue}/"),
    SweptPage("export rejected", "/exports/{rejected}/"),
    SweptPage("export packaged", "/exports/{packaged}/"),
    SweptPage("preview", "/exports/executions/{execution}/preview"),
    SweptPage("execution", "/executions/{execution}/"),
    SweptPage("new export (evidence picker)", "/executions/{execution}/exports/new"),
    SweptPage("dashboard", "/governance/dashboard"),
    SweptPage("reports", "/governance/reports"),
    SweptPage("preferences", "/accounts/preferences/"),
    SweptPage("password change", "/accounts/password/"),
    SweptPage("signature certification", "/account/signature-certification"),
    SweptPage("audit-trail reviews", "/audit-reviews/"),
    SweptPage("admin index", "/admin/", roles=("demo-compliance", "demo-admin")),
    SweptPage("not found", "/exports/{missing}/", status=404),
    SweptPage("another team's export", "/exports/{foreign}/", status=404),
]

# Pages for someone not signed in.
ANONYMOUS = "anonymous"
# The roles whose pages axe also audits at the phone width (see the docstring).
AUDITED_AT_EVERY_WIDTH = ("demo-admin", ANONYMOUS)
PAGES += [
    SweptPage("sign-in", "/accounts/login/", roles=(ANONYMOUS,)),
    SweptPage("admin sign-in", "/admin/login/", roles=(ANONYMOUS,)),
]

# Collected in the page: codes written with "_" or "." anywhere in the visible text; one-word codes only as a
# visible text node of their own (a badge or a cell saying "approved"), since they are also ordinary words.
FIND_RAW_CODES = """
([compound, single]) => {
  const text = document.body.innerText;
  const found = compound.filter((code) => {
    const escaped = code.replace(/[.*+?^${}()|[\\]\\\\]/g, "\\\\$&");
    return new RegExp("(^|[^\\\\w.-])" + escaped + "($|[^\\\\w-])").test(text);
  });
  const words = new Set(single);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const value = node.data.trim();
    if (words.has(value) && node.parentElement && node.parentElement.checkVisibility()) {
      found.push(value);
    }
  }
  return [...new Set(found)];
}
"""


def demo_ids() -> dict[str, int]:
    """Ids of the seeded demo objects the pages are about, one export per state."""
    from approvals.models import ApprovalLadder, ApprovalStage
    from exports.models import Execution, NarrativeExport

    biolabs = NarrativeExport.objects.filter(execution__team__slug="biolabs").order_by("id")
    overdue = ApprovalStage.objects.filter(
        ladder__export__execution__team__slug="biolabs", status="in_progress", overdue_at__isnull=False
    )
    open_ladders = ApprovalLadder.objects.filter(export__execution__team__slug="biolabs", status="in_progress")
    return {
        "awaiting": open_ladders.exclude(stages__overdue_at__isnull=False).order_by("export_id").first().export_id,
        "overdue": overdue.order_by("ladder__export_id").first().ladder.export_id,
        "rejected": biolabs.filter(status="rejected").first().pk,
        "packaged": biolabs.filter(status="packaged").first().pk,
        "execution": Execution.objects.filter(team__slug="biolabs").order_by("id").first().pk,
        "missing": NarrativeExport.objects.order_by("-id").first().pk + 1000,
    }


def foreign_export_ids() -> dict[str, dict[str, int]]:
    """Per role, ``{"foreign": id}`` of an export of a team the user is not a member of (none for members of
    every demo team: the page is then skipped for them)."""
    from exports.models import NarrativeExport

    ids = {}
    for username in ROLES:
        export = NarrativeExport.objects.exclude(execution__team__memberships__user__username=username).first()
        ids[username] = {"foreign": export.pk} if export else {}
    return ids


@pytest.fixture
def demo():
    from django.core.management import call_command

    call_command("seed_demo", stdout=io.StringIO())
    return {username: {**demo_ids(), **foreign} for username, foreign in foreign_export_ids().items()}


def sign_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(django_settings.DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")


def problems_at(page: Page, axe: Axe | None, codes: tuple[list[str], list[str]]) -> list[str]:
    """What is wrong with the page as it is now laid out (without an accessibility audit when ``axe`` is None)."""
    problems = []
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if width > viewport:
        problems.append(f"{width} px wide in a {viewport} px viewport")
    if found := page.evaluate(FIND_RAW_CODES, list(codes)):
        problems.append(f"raw codes in the visible text: {', '.join(sorted(found))}")
    if axe is None:
        return problems
    results = axe.run(page, options={"resultTypes": ["violations"]})
    for violation in results.response["violations"]:
        if violation["impact"] in SERIOUS:
            targets = json.dumps([node["target"] for node in violation["nodes"]][:3])
            problems.append(f"axe {violation['impact']} {violation['id']}: {violation['help']} at {targets}")
    return problems


def code_sets() -> tuple[list[str], list[str]]:
    """The label mapping's codes: (written with "_" or ".", one word)."""
    codes = raw_codes()
    compound = sorted(code for code in codes if "_" in code or "." in code)
    return compound, sorted(code for code in codes if code not in compound)


def test_every_page_fits_speaks_labels_and_passes_axe_for_every_role(browser: Browser, live_server, demo):
    codes = code_sets()
    axe = Axe()
    problems: list[str] = []
    visited = set()
    for username in (ANONYMOUS, *ROLES):
        context = browser.new_context(base_url=live_server.url, viewport={"width": WIDTHS[0], "height": 900})
        page = context.new_page()
        if username != ANONYMOUS:
            sign_in(page, username)
        for swept in PAGES:
            if username not in swept.roles:
                continue
            try:
                path = swept.path.format(**demo.get(username, {}))
            except KeyError:  # no such object for this role (a member of every team has no foreign export)
                continue
            page.set_viewport_size({"width": WIDTHS[0], "height": 900})
            response = page.goto(path)
            assert response is not None, path
            if response.status != swept.status:
                problems.append(f"{username} {swept.name} ({path}): status {response.status}, not {swept.status}")
                continue
            visited.add((username, swept.name))
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                audit = axe if width == WIDTHS[0] or username in AUDITED_AT_EVERY_WIDTH else None
                problems += [
                    f"{username} {swept.name} ({path}) at {width} px: {problem}"
                    for problem in problems_at(page, audit, codes)
                ]
        context.close()
    assert problems == [], "\n".join(problems)
    # Every page was seen by every role it is for (the foreign export only by roles outside a team).
    assert {name for _, name in visited} == {swept.name for swept in PAGES}
    assert len(visited) >= len(ROLES) * (len(PAGES) - 5)


def test_the_sweep_sees_what_it_looks_for(browser: Browser, live_server, demo):
    """The checks fail on a page that has what they look for: overflow, a raw code, an unlabelled control."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 900})
    page = context.new_page()
    sign_in(page, "demo-operator")
    page.goto("/exports/")
    page.evaluate(
        """() => document.querySelector("main").insertAdjacentHTML("beforeend",
            '<p>Stage is in_progress</p><p><span>approved</span></p><input type="text">'
            + '<p class="nowrap">' + "An unbreakable line far wider than a phone. ".repeat(20) + '</p>')"""
    )
    problems = "\n".join(problems_at(page, Axe(), code_sets()))
    context.close()
    assert "px wide in a 390 px viewport" in problems
    assert "raw codes in the visible text: approved, in_progress" in problems
    assert "axe critical label" in problems
