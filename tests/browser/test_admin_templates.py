"""The curation flow in a real browser: a compliance user builds, publishes and assigns a ladder; a scientist
is refused."""

import re

import pytest

from governance.models import WorkflowTemplate, WorkflowTemplateAssignment
from tests.factories import PASSWORD, TeamFactory, member_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

STAGES = [
    ("Scientific review", "reviewer", "24", "Reviewed"),
    ("QA approval", "qa_approver", "48", "Approved for release"),
    ("Compliance sign-off", "compliance", "72", "Compliant"),
]


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def staff_member(team, role: str, username: str):
    user = member_of(team, role, username=username)
    user.is_staff = True
    user.save()
    return user


def test_compliance_curates_a_ladder_and_a_scientist_is_refused(page, live_server):
    team = TeamFactory(slug="biolabs", name="BioLabs")
    staff_member(team, "compliance", "curator")
    staff_member(team, "scientist", "bench")
    base = live_server.url

    log_in(page, base, "curator")
    page.goto(f"{base}/admin/governance/workflowtemplate/add/")
    page.fill("#id_template_key", "qa-release")
    page.fill("#id_name", "QA release")
    for index, (name, role, sla, meaning) in enumerate(STAGES):
        page.fill(f"#id_stage_rows-{index}-position", str(index + 1))
        page.fill(f"#id_stage_rows-{index}-name", name)
        page.select_option(f"#id_stage_rows-{index}-required_role", role)
        page.fill(f"#id_stage_rows-{index}-sla_hours", sla)
        page.fill(f"#id_stage_rows-{index}-meaning", meaning)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    assert "draft qa-release v1 created" in page.inner_text(".messagelist").lower()
    template = WorkflowTemplate.objects.get(template_key="qa-release")
    assert [stage["name"] for stage in template.stage_blueprints] == [name for name, *_ in STAGES]

    page.check(f"input[name=_selected_action][value='{template.pk}']")
    page.select_option("select[name=action]", "publish_selected")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert re.search(r"qa-release v1: published as snapshot \d+", page.inner_text(".messagelist"), re.IGNORECASE)
    template.refresh_from_db()
    assert template.status == "published"

    page.goto(f"{base}/admin/governance/workflowtemplateassignment/add/")
    page.click("#id_template + .select2 .select2-selection")
    page.fill(".select2-search__field", "qa-release")
    page.click(".select2-results__option:has-text('qa-release v1')")
    page.select_option("#id_team", label="BioLabs")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    assignment = WorkflowTemplateAssignment.objects.get()
    assert (assignment.template_id, assignment.team_id) == (template.pk, team.pk)

    page.context.clear_cookies()
    log_in(page, base, "bench")
    response = page.goto(f"{base}/admin/governance/workflowtemplate/add/")
    assert response.status == 403
    page.goto(f"{base}/admin/governance/workflowtemplate/")
    assert page.locator("select[name=action]").count() == 0 or "publish_selected" not in page.inner_html(
        "select[name=action]"
    )
    assert WorkflowTemplate.objects.count() == 1
