"""The scientist's job in a real browser: from the home page to an execution, evidence added there, an export
created through the picker, a rejection, a new version from the rejected one, every stage signed on the pages,
and the signed bundle downloaded."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_export_signing import sign_in, sign_out
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lab(team):
    from exports.services.evidence import notebook_entry_create
    from exports.services.executions import execution_create
    from tests.approvals.factories import crew_for, published_snapshot

    crew = crew_for(team)
    published_snapshot()  # the default template: reviewer → QA approver → compliance
    execution = execution_create(team=team, title="Stability study lot 9", owner=crew.author)
    notebook_entry_create(execution=execution, actor=crew.author, title="Balance calibration", body="Within 0.1 mg.")
    return crew, execution


def sign(page: Page, url: str, *, reject: bool = False) -> None:
    page.goto(url)
    form = page.get_by_test_id("sign-form")
    if reject:
        form.get_by_label("Reject").check()
        form.get_by_label("Meaning").fill("Rejected")
        form.get_by_label("Comment").fill("The stability pull at 6 months is missing.")
    username = form.get_by_label("Username")
    if username.count():  # the first signature of the session gives both components
        username.fill(page.locator(".whoami strong").inner_text())
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign", exact=True).click()
    expect(page.locator(".message.success")).to_contain_text("rejected" if reject else "approved")


def test_a_scientist_creates_an_export_in_the_browser_and_a_new_version_after_a_rejection(page: Page, live_server, lab):
    crew, execution = lab
    base = live_server.url

    # From the home page to the execution; a notebook entry added there becomes evidence.
    sign_in(page, base, "author")
    page.get_by_role("link", name="Stability study lot 9").click()
    expect(page).to_have_url(f"{base}/executions/{execution.pk}/")
    notebook = page.get_by_test_id("notebook-form")
    notebook.get_by_label("Title").fill("HPLC run 3")
    notebook.get_by_label("Body").fill("Peak purity 99.2 %.")
    notebook.get_by_role("button", name="Add entry").click()
    expect(page.locator(".message.success")).to_contain_text("HPLC run 3")
    expect(page.get_by_test_id("execution-evidence")).to_contain_text("HPLC run 3")
    upload = page.get_by_test_id("upload-form")
    upload.get_by_label("File").set_input_files(
        files=[{"name": "Chromatogram.csv", "mimeType": "text/csv", "buffer": b"t,signal\n0.1,12\n"}]
    )
    upload.get_by_role("button", name="Upload").click()
    expect(page.locator(".message.success")).to_contain_text("Chromatogram.csv")

    # The picker: filter, choose, preview, create.
    page.get_by_test_id("new-export").click()
    picker = page.get_by_test_id("evidence-picker")
    expect(picker.locator("tbody tr")).to_have_count(3)
    page.get_by_label("Filter the evidence").fill("hplc")
    expect(picker.locator("tbody tr:visible")).to_have_count(1)
    page.get_by_label("HPLC run 3").check()
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview-stage")).to_have_count(3)
    expect(page.get_by_test_id("preview-narrative")).to_contain_text("HPLC run 3")
    expect(page.get_by_label("HPLC run 3")).to_be_checked()
    expect(page.get_by_label("Balance calibration")).not_to_be_checked()
    page.get_by_role("button", name="Create the export").click()
    expect(page.locator(".message.success")).to_contain_text("Export version 1 created")
    expect(page.get_by_test_id("export-status")).to_have_text("Awaiting approval")
    first_url = page.url
    sign_out(page)

    # The reviewer rejects version 1.
    sign_in(page, base, "rev")
    sign(page, first_url, reject=True)
    expect(page.get_by_test_id("export-status")).to_have_text("Rejected")
    sign_out(page)

    # The scientist starts version 2 from the rejected one: its evidence comes pre-selected.
    sign_in(page, base, "author")
    page.goto(first_url)
    page.get_by_test_id("new-version").click()
    expect(page.get_by_test_id("previous-version")).to_contain_text("version 1")
    expect(page.get_by_label("HPLC run 3")).to_be_checked()
    page.get_by_label("Balance calibration").check()
    page.get_by_label("Chromatogram.csv").check()
    page.get_by_role("button", name="Create the export").click()
    expect(page.locator(".message.success")).to_contain_text("Export version 2 created")
    second_url = page.url
    assert second_url != first_url and re.search(r"/exports/\d+/$", second_url)
    sign_out(page)

    # The ladder's users sign version 2 on its page; packaging runs and the bundle downloads.
    for username in ("rev", "qa", "comp"):
        sign_in(page, base, username)
        sign(page, second_url)
        sign_out(page)

    sign_in(page, base, "author")
    page.goto(f"{base}/executions/{execution.pk}/")
    exports = page.get_by_test_id("execution-exports")
    expect(exports.locator("tbody tr")).to_have_count(2)
    expect(exports).to_contain_text("Packaged")
    expect(exports).to_contain_text("Rejected")
    page.goto(second_url)
    expect(page.get_by_test_id("export-status")).to_have_text("Packaged")
    with page.expect_download() as download_info:
        page.get_by_test_id("download").click()
    assert re.match(r"dossier-\d+-v2", download_info.value.suggested_filename)
