"""Part 11 signing controls in the browser (docs/part11.md): a first-time signer certifies, then gives both
signature components; the next signature of the session needs the password only; after the inactivity window,
both again. An independent reviewer signs the audit-trail review on its page."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.browser.test_export_signing import sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(team):
    from exports.services.executions import execution_create
    from governance.choices import RoleKey
    from governance.models import Role
    from tests.approvals.factories import crew_for, export_with_ladder, published_snapshot
    from tests.factories import member_of

    for key, label in RoleKey.choices:  # transactional tests flush the roles the migration seeded
        Role.objects.get_or_create(key=key, defaults={"label": label})
    crew = crew_for(team)
    member_of(team, "reviewer", username="newcomer", certified=False)
    snapshot = published_snapshot()
    exports = []
    for n in range(3):
        execution = execution_create(team=team, title=f"Stability lot {n}", owner=crew.author)
        exports.append(export_with_ladder(execution=execution, author=crew.author, snapshot=snapshot))
    return crew, exports


def sign(page: Page, *, username: str | None) -> None:
    form = page.get_by_test_id("sign-form")
    if username is None:
        expect(form.get_by_label("Username")).to_have_count(0)
    else:
        form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign", exact=True).click()
    expect(page.locator(".message.success")).to_contain_text("Signed: stage approved.")


def test_certify_then_both_components_then_the_password_alone_until_the_window_ends(page: Page, live_server, scene):
    from approvals.models import ApprovalSignature, SigningSession

    _, exports = scene
    sign_in(page, live_server.url, "newcomer")
    page.goto(f"{live_server.url}/exports/{exports[0].pk}/")
    expect(page.get_by_test_id("sign-form")).to_have_count(0)
    expect(page.get_by_test_id("sign-refusal")).to_contain_text("Certify your electronic signature")
    page.get_by_role("link", name="Certify your signature").click()

    expect(page.get_by_test_id("certification-statement")).to_contain_text("legally binding equivalent")
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Certify").click()
    expect(page.locator("[role=alert]")).to_contain_text("password does not match")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Certify").click()
    expect(page).to_have_url(f"{live_server.url}/exports/{exports[0].pk}/")
    expect(page.locator(".message.success")).to_contain_text("certified")

    form = page.get_by_test_id("sign-form")
    form.get_by_label("Password").fill(PASSWORD)  # the username is left out: refused, nothing counted
    form.get_by_role("button", name="Sign", exact=True).click()
    expect(page.locator(".message.error")).to_contain_text("needs your username as well as your password")
    sign(page, username="newcomer")

    page.goto(f"{live_server.url}/exports/{exports[1].pk}/")
    sign(page, username=None)  # the same continuous session: the password alone

    SigningSession.objects.update(last_signed_at=timezone.now() - timedelta(minutes=31))
    page.goto(f"{live_server.url}/exports/{exports[2].pk}/")
    sign(page, username="newcomer")
    assert ApprovalSignature.objects.filter(signer__username="newcomer").count() == 3


def test_an_independent_reviewer_signs_the_audit_trail_review_on_its_page(page: Page, live_server, scene):
    from approvals.models import AuditReview
    from approvals.services.audit_reviews import audit_reviews_schedule, month_period
    from governance.services.clearance import clearance_set

    crew, _ = scene
    clearance_set(team=crew.compliance.memberships.get().team, username="rev", level="Confidential",
                  actor=crew.compliance)  # fmt: skip
    start, end = month_period(timezone.now())
    audit_reviews_schedule(now=end + timedelta(minutes=1), period_start=start)
    review = AuditReview.objects.get()

    sign_in(page, live_server.url, "comp")
    page.goto(f"{live_server.url}/audit-reviews/{review.pk}/")
    form = page.get_by_test_id("review-form")
    form.get_by_label("Username").fill("comp")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign review").click()
    expect(page.locator(".message.error")).to_contain_text("independent reviewer")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, live_server.url, "adm")
    page.get_by_role("link", name="Audit reviews").click()
    page.get_by_role("link", name=f"{start:%Y-%m}", exact=True).click()
    form = page.get_by_test_id("review-form")
    form.get_by_label("Comment").fill("Clearance change confirmed with the lab head.")
    form.get_by_label("Username").fill("adm")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign review").click()
    expect(page.locator(".message.success")).to_contain_text("review is complete")
    expect(page.get_by_test_id("review-status")).to_have_text("Completed")
    expect(page.get_by_test_id("review-signature")).to_contain_text("Audit trail reviewed")
    assert AuditReview.objects.get().completed_by == crew.admin
