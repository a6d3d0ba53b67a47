import re
import subprocess

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ladder(team):
    from governance.choices import RoleKey
    from governance.models import Role
    from tests.approvals.factories import crew_for, export_with_ladder, published_snapshot

    for key, label in RoleKey.choices:  # transactional tests flush the roles the migration seeded
        Role.objects.get_or_create(key=key, defaults={"label": label})
    from exports.services.executions import execution_create

    crew = crew_for(team)
    execution = execution_create(team=team, title="Stability study lot 7", owner=crew.author)
    export = export_with_ladder(execution=execution, author=crew.author, snapshot=published_snapshot())
    # As export creation does today: the current bundle format, whose bundles carry the PDF rendition.
    from exports.formats import BUNDLE_FORMAT_VERSION

    export.bundle_format_version = BUNDLE_FORMAT_VERSION
    export.save(update_fields=["bundle_format_version"])
    return crew, export


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_every_stage_is_signed_on_the_export_page_then_the_bundle_downloads(page: Page, live_server, ladder):
    crew, export = ladder
    url = f"{live_server.url}/exports/{export.pk}/"

    sign_in(page, live_server.url, "rev")
    page.goto(url)
    page.get_by_label("Username").fill("rev")
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.locator(".message.error")).to_contain_text("password does not match")
    sign_out(page)

    for username, meaning in (("rev", "Reviewed"), ("qa", "Approved for release"), ("comp", "Compliant")):
        sign_in(page, live_server.url, username)
        page.goto(url)
        form = page.get_by_test_id("sign-form")
        expect(form.get_by_label("Meaning")).to_have_value(meaning)
        form.get_by_label("Comment").fill(f"Checked by {username}.")
        form.get_by_label("Username").fill(username)
        form.get_by_label("Password").fill(PASSWORD)
        form.get_by_role("button", name="Sign", exact=True).click()
        expect(page.locator(".message.success")).to_contain_text("Signed: stage approved.")
        expect(page.locator(".signature").filter(has_text=meaning)).to_be_visible()
        sign_out(page)

    sign_in(page, live_server.url, "aud")
    page.goto(url)
    expect(page.get_by_test_id("export-status")).to_have_text("Packaged")
    expect(page.locator(".signature")).to_have_count(3)
    expect(page.get_by_test_id("sign-form")).to_have_count(0)
    with page.expect_download() as download_info:
        page.get_by_test_id("download").click()
    download = download_info.value
    assert download.suggested_filename.startswith(f"dossier-{export.pk}-v1")

    # The PDF rendition from the same page: every signer's printed name and meaning, as signed above.
    with page.expect_download() as rendition_info:
        page.get_by_test_id("download-pdf").click()
    rendition = rendition_info.value
    assert rendition.suggested_filename == f"dossier-{export.pk}-v1.pdf"
    text = subprocess.run(["pdftotext", rendition.path(), "-"], capture_output=True, check=True, text=True).stdout
    for signer, meaning in (
        (crew.reviewer, "Reviewed"),
        (crew.qa, "Approved for release"),
        (crew.compliance, "Compliant"),
    ):
        assert (signer.get_full_name() or signer.username) in text and meaning in text


def test_the_meaning_follows_the_decision_and_a_rejection_reads_rejected(page: Page, live_server, ladder):
    from approvals.models import ApprovalSignature

    crew, export = ladder
    sign_in(page, live_server.url, "rev")
    page.goto(f"{live_server.url}/exports/{export.pk}/")
    form = page.get_by_test_id("sign-form")
    meaning = form.get_by_label("Meaning")
    expect(meaning).to_have_value("Reviewed")
    form.get_by_label("Reject").check()
    expect(meaning).to_have_value("Rejected")
    form.get_by_label("Approve").check()
    expect(meaning).to_have_value("Reviewed")
    meaning.fill("Checked the raw data")
    form.get_by_label("Reject").check()
    expect(meaning).to_have_value("Checked the raw data")  # what the signer typed is kept

    meaning.fill("Reviewed")  # typed back by hand: the page refuses it for a rejection
    form.get_by_label("Comment").fill("Plate 3 is missing.")
    form.get_by_label("Username").fill("rev")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign", exact=True).click()
    expect(page.locator(".message.error")).to_contain_text("approval meaning")
    assert not ApprovalSignature.objects.exists()

    form = page.get_by_test_id("sign-form")
    form.get_by_label("Reject").check()
    expect(form.get_by_label("Meaning")).to_have_value("Rejected")
    form.get_by_label("Comment").fill("Plate 3 is missing.")
    form.get_by_label("Username").fill("rev")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign", exact=True).click()
    expect(page.locator(".message.success")).to_contain_text("Signed: stage rejected.")
    expect(page.locator(".signature").filter(has_text="rejected — “Rejected”")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("rejectd")
    assert ApprovalSignature.objects.get().meaning == "Rejected"
