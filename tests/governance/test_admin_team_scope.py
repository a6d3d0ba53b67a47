"""The curation admin applies the team rules of docs/templates-and-baselines.md to a staff curator who is not a
superuser: another team's templates, snapshots, assignments and baselines are 404, its name appears in no filter
and no choice, and actions never reach it. Superusers see everything."""

import pytest
from django.test import Client
from django.urls import reverse

from governance.models import GovernanceTemplateAuditLog, WorkflowTemplate, WorkflowTemplateAssignment
from governance.services.templates import template_assign, template_create
from tests.factories import member_of
from tests.governance.conftest import THREE_STAGES, ladder

pytestmark = pytest.mark.postgres


def staff_client(user, *, superuser: bool = False) -> Client:
    user.is_staff, user.is_superuser = True, superuser
    user.save()
    client = Client()
    client.force_login(user)
    return client


def admin_url(model: str, view: str, *args) -> str:
    return reverse(f"admin:governance_{model}_{view}", args=args)


@pytest.fixture
def governance_of_a(team):
    """Team A (Alpha Lab) with a published template, a draft, both assignments and a platform template."""
    a_curator = member_of(team, "compliance", username="a-curator")
    published = template_create(
        actor=a_curator, team=team, template_key="alpha-only", name="Alpha", stages=THREE_STAGES, status="published"
    )
    draft = template_create(actor=a_curator, team=team, template_key="alpha-draft", name="Draft", stages=THREE_STAGES)
    team_assignment, _ = template_assign(template=published, actor=a_curator, team=team)
    protocol_assignment, _ = template_assign(
        template=published, actor=a_curator, team=team, protocol_template_key="assay"
    )
    platform = template_create(
        actor=None, team=None, template_key="standard-release", name="Std", stages=THREE_STAGES, status="published"
    )
    return {
        "published": published,
        "draft": draft,
        "snapshot": published.snapshots.get(),
        "assignments": [team_assignment, protocol_assignment],
        "platform": platform,
    }


@pytest.fixture
def b_client(other_team):
    return staff_client(member_of(other_team, "compliance", "admin", username="b-curator"))


def test_another_teams_objects_are_404_in_the_admin(governance_of_a, b_client):
    objects = [
        ("workflowtemplate", governance_of_a["published"].pk),
        ("workflowtemplate", governance_of_a["draft"].pk),
        ("workflowtemplatesnapshot", governance_of_a["snapshot"].pk),
        *(("workflowtemplateassignment", assignment.pk) for assignment in governance_of_a["assignments"]),
    ]
    for model, pk in objects:
        for view in ("change", "history", "delete"):
            assert b_client.get(admin_url(model, view, pk)).status_code == 404, (model, view)
    for assignment in governance_of_a["assignments"]:
        assert (
            b_client.post(admin_url("workflowtemplateassignment", "delete", assignment.pk), {"post": "yes"}).status_code
            == 404
        )
    assert WorkflowTemplateAssignment.objects.count() == 2
    platform_page = b_client.get(admin_url("workflowtemplate", "change", governance_of_a["platform"].pk))
    assert platform_page.status_code == 200 and 'name="name"' not in platform_page.content.decode(), "read-only"


def test_lists_filters_and_choices_never_name_another_team(governance_of_a, b_client, other_team):
    template_create(
        actor=None, team=other_team, template_key="beta-only", name="Beta", stages=THREE_STAGES, status="published"
    )
    for model in (
        "workflowtemplate",
        "workflowtemplatesnapshot",
        "workflowtemplateassignment",
        "governancetemplateauditlog",
        "governancebaseline",
        "governancebaselineevent",
    ):
        page = b_client.get(admin_url(model, "changelist"))
        assert page.status_code == 200, model
        html = page.content.decode()
        assert "Alpha Lab" not in html and "alpha-only" not in html and "alpha-draft" not in html, model
    templates = b_client.get(admin_url("workflowtemplate", "changelist")).content.decode()
    assert "Beta Lab" in templates and "beta-only" in templates and "standard-release" in templates
    for model in ("workflowtemplate", "workflowtemplateassignment"):
        add_page = b_client.get(admin_url(model, "add")).content.decode()
        assert "Alpha Lab" not in add_page and "Beta Lab" in add_page, model
    audit = GovernanceTemplateAuditLog.objects.filter(template=governance_of_a["published"])
    assert audit.exists(), "A's audit rows exist but stay out of B's list"


def test_forms_and_actions_refuse_another_teams_objects(governance_of_a, b_client, team, other_team):
    published, draft = governance_of_a["published"], governance_of_a["draft"]
    changelist = admin_url("workflowtemplate", "changelist")
    b_client.post(changelist, {"action": "archive_selected", "_selected_action": [published.pk]})
    b_client.post(changelist, {"action": "publish_selected", "_selected_action": [draft.pk]})
    b_client.post(changelist, {"action": "fork_selected", "_selected_action": [published.pk]})
    published.refresh_from_db()
    draft.refresh_from_db()
    assert (published.status, draft.status) == ("published", "draft")
    assert WorkflowTemplate.objects.filter(team=team).count() == 2

    platform = governance_of_a["platform"]
    response = b_client.post(changelist, {"action": "archive_selected", "_selected_action": [platform.pk]}, follow=True)
    assert any("superusers only" in str(message) for message in response.context["messages"])
    platform.refresh_from_db()
    assert platform.status == "published"

    add_assignment = admin_url("workflowtemplateassignment", "add")
    for form in (
        {"template": published.pk, "team": other_team.pk, "protocol_template_key": ""},
        {"template": platform.pk, "team": team.pk, "protocol_template_key": "assay"},
    ):
        page = b_client.post(add_assignment, form)
        assert page.status_code == 200 and "Select a valid choice" in page.content.decode(), form
    assert WorkflowTemplateAssignment.objects.count() == 2

    add_template = admin_url("workflowtemplate", "add")
    stages = {
        "stage_rows-TOTAL_FORMS": "1",
        "stage_rows-INITIAL_FORMS": "0",
        "stage_rows-MIN_NUM_FORMS": "0",
        "stage_rows-MAX_NUM_FORMS": "1000",
        "stage_rows-0-position": "1",
        "stage_rows-0-name": "Stamp",
        "stage_rows-0-required_role": "compliance",
        "stage_rows-0-sla_hours": "1",
        "stage_rows-0-meaning": "OK",
    }
    base = {"name": "X", "sla_hours": "48", "escalate_after_hours": "24", "retention_days": "30", **stages}
    into_a = b_client.post(add_template, {**base, "team": team.pk, "template_key": "sneaky"})
    assert into_a.status_code == 200 and "Select a valid choice" in into_a.content.decode()
    platform_try = b_client.post(add_template, {**base, "team": "", "template_key": "sneaky"})
    assert platform_try.status_code == 200, "a team is required from a curator who is not a superuser"
    assert not WorkflowTemplate.objects.filter(template_key="sneaky").exists()
    own = b_client.post(add_template, {**base, "team": other_team.pk, "template_key": "beta-ladder"})
    assert own.status_code == 302
    assert WorkflowTemplate.objects.get(template_key="beta-ladder").team_id == other_team.pk


def test_superusers_see_and_curate_every_team(governance_of_a, other_team):
    root = staff_client(member_of(other_team, "scientist", username="root"), superuser=True)
    html = root.get(admin_url("workflowtemplate", "changelist")).content.decode()
    assert "alpha-only" in html and "Alpha Lab" in html and "Beta Lab" in html
    draft = governance_of_a["draft"]
    assert root.get(admin_url("workflowtemplate", "change", draft.pk)).status_code == 200
    root.post(
        admin_url("workflowtemplate", "changelist"), {"action": "publish_selected", "_selected_action": [draft.pk]}
    )
    draft.refresh_from_db()
    assert draft.status == "published"


def test_a_staff_curator_edits_drafts_of_their_own_team_only(team, other_team):
    both = member_of(team, "scientist", username="mixed")
    member_of(other_team, "compliance", username="mixed")
    client = staff_client(both)
    alpha_draft = template_create(actor=None, team=team, template_key="a", name="A", stages=ladder("reviewer"))
    beta_draft = template_create(actor=None, team=other_team, template_key="b", name="B", stages=ladder("reviewer"))
    assert 'name="name"' not in client.get(admin_url("workflowtemplate", "change", alpha_draft.pk)).content.decode()
    assert 'name="name"' in client.get(admin_url("workflowtemplate", "change", beta_draft.pk)).content.decode()
