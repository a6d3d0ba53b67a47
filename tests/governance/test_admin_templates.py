import pytest
from django.test import Client
from django.urls import reverse

from governance.models import (
    GovernanceTemplateAuditLog,
    Team,
    WorkflowTemplate,
    WorkflowTemplateAssignment,
    WorkflowTemplateSnapshot,
)
from governance.services.templates import template_publish

ADD = reverse("admin:governance_workflowtemplate_add")
CHANGELIST = reverse("admin:governance_workflowtemplate_changelist")


def change_url(template):
    return reverse("admin:governance_workflowtemplate_change", args=[template.pk])


def staff(user):
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def curator_client(curator):
    return staff(curator)


def stage_forms(stages, *, initial=0, prefix="stage_rows"):
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(stages)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, stage in enumerate(stages):
        for key, value in stage.items():
            data[f"{prefix}-{index}-{key}"] = value
    return data


THREE = [
    {
        "position": "1",
        "name": "Scientific review",
        "required_role": "reviewer",
        "sla_hours": "24",
        "meaning": "Reviewed",
    },
    {"position": "2", "name": "QA approval", "required_role": "qa_approver", "sla_hours": "48", "meaning": "Approved"},
    {"position": "3", "name": "Compliance", "required_role": "compliance", "sla_hours": "12.5", "meaning": "Compliant"},
]


def template_form(**fields):
    return {
        "team": str(Team.objects.get(slug="alpha").pk),
        "template_key": "qa-release",
        "name": "QA release",
        "description": "Three-stage release",
        "forked_from": "",
        "sla_hours": "48",
        "escalate_after_hours": "24",
        "retention_days": "3650",
        **fields,
    }


def test_curator_adds_a_template_with_three_inline_stages_publishes_and_assigns(curator_client, team):
    assert curator_client.get(ADD).status_code == 200
    response = curator_client.post(ADD, {**template_form(), **stage_forms(THREE)})
    assert response.status_code == 302, response.content.decode()[:3000]
    template = WorkflowTemplate.objects.get(template_key="qa-release")
    assert (template.version, template.status, template.created_by.username) == (1, "draft", "casey")
    assert [s["name"] for s in template.stage_blueprints] == ["Scientific review", "QA approval", "Compliance"]
    assert template.stage_blueprints[2]["sla_hours"] == 12.5
    assert template.stage_blueprints[0]["sla_hours"] == 24
    assert template.stage_rows.count() == 3

    response = curator_client.post(CHANGELIST, {"action": "publish_selected", "_selected_action": [template.pk]})
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.status == "published"
    snapshot = WorkflowTemplateSnapshot.objects.get(template=template)
    assert GovernanceTemplateAuditLog.objects.filter(action="published", snapshot=snapshot).exists()

    add_assignment = reverse("admin:governance_workflowtemplateassignment_add")
    response = curator_client.post(
        add_assignment, {"template": template.pk, "team": team.pk, "protocol_template_key": ""}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assignment = WorkflowTemplateAssignment.objects.get()
    assert (assignment.template_id, assignment.team_id, assignment.created_by.username) == (
        template.pk,
        team.pk,
        "casey",
    )
    assert GovernanceTemplateAuditLog.objects.filter(action="assigned").count() == 1


def test_edit_a_draft_reorders_renames_and_deletes_stages(curator_client, make_template):
    draft = make_template("qa-release")
    rows = list(draft.stage_rows.order_by("position"))
    edited = [
        {
            "id": str(rows[0].pk),
            "template": str(draft.pk),
            "position": "2",
            "name": "Review",
            "required_role": "reviewer",
            "sla_hours": "24",
            "meaning": "Reviewed",
        },
        {
            "id": str(rows[1].pk),
            "template": str(draft.pk),
            "position": "1",
            "name": "QA first",
            "required_role": "qa_approver",
            "sla_hours": "6",
            "meaning": "Approved",
        },
        {
            "id": str(rows[2].pk),
            "template": str(draft.pk),
            "position": "3",
            "name": rows[2].name,
            "required_role": "compliance",
            "sla_hours": "72",
            "meaning": "x",
            "DELETE": "on",
        },
    ]
    response = curator_client.post(
        change_url(draft), {**template_form(name="Renamed"), **stage_forms(edited, initial=3)}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    draft.refresh_from_db()
    assert draft.name == "Renamed"
    assert [(s["name"], s["sla_hours"]) for s in draft.stage_blueprints] == [("QA first", 6), ("Review", 24)]
    assert list(draft.stage_rows.order_by("position").values_list("name", flat=True)) == ["QA first", "Review"]


def test_invalid_stages_get_clear_messages_on_their_fields(curator_client):
    bad = [
        {**THREE[0], "sla_hours": "0"},
        {**THREE[1], "name": "scientific review"},
        {**THREE[2], "required_role": "ghost"},
    ]
    response = curator_client.post(ADD, {**template_form(), **stage_forms(bad)})
    assert response.status_code == 200
    page = response.content.decode()
    assert "SLA hours must be at least 0.01." in page
    assert "The name &#x27;scientific review&#x27; is already used by stage 1." in page
    assert "Select a valid choice" in page
    assert not WorkflowTemplate.objects.exists()


def test_a_template_without_stages_is_refused(curator_client):
    response = curator_client.post(ADD, {**template_form(), **stage_forms([])})
    assert response.status_code == 200
    assert "A template needs at least one stage." in response.content.decode()
    assert not WorkflowTemplate.objects.exists()


def test_stage_role_outside_permitted_roles_is_explained(curator_client):
    response = curator_client.post(ADD, {**template_form(permitted_roles=["reviewer"]), **stage_forms(THREE)})
    assert response.status_code == 200
    assert "Role &#x27;qa_approver&#x27; is not among the template&#x27;s permitted roles." in response.content.decode()


def test_adding_an_existing_key_makes_a_new_version_and_fork_action(curator_client, make_template, curator):
    v1 = make_template("qa-release", publish=True)
    response = curator_client.post(ADD, {**template_form(), **stage_forms(THREE[:1])})
    assert response.status_code == 302
    v1.refresh_from_db()
    v2 = WorkflowTemplate.objects.get(template_key="qa-release", version=2)
    assert v2.is_latest and not v1.is_latest and v2.forked_from_id == v1.pk

    template_publish(template=v2, actor=curator)
    curator_client.post(CHANGELIST, {"action": "fork_selected", "_selected_action": [v2.pk]})
    v3 = WorkflowTemplate.objects.get(template_key="qa-release", version=3)
    assert (v3.status, v3.forked_from_id, v3.stage_blueprints) == ("draft", v2.pk, v2.stage_blueprints)

    response = curator_client.post(
        ADD, {**template_form(template_key="qa-release-eu", forked_from=str(v2.pk)), **stage_forms(THREE)}
    )
    assert response.status_code == 302
    fork = WorkflowTemplate.objects.get(template_key="qa-release-eu")
    assert (fork.version, fork.forked_from_id) == (1, v2.pk)
    assert GovernanceTemplateAuditLog.objects.filter(action="forked").count() == 2


def test_archive_action_and_errors_reported_per_template(curator_client, make_template):
    published = make_template("a", publish=True)
    archived = make_template("b", publish=True)
    curator_client.post(CHANGELIST, {"action": "archive_selected", "_selected_action": [archived.pk]})
    response = curator_client.post(
        CHANGELIST, {"action": "archive_selected", "_selected_action": [published.pk, archived.pk]}, follow=True
    )
    shown = [str(message) for message in response.context["messages"]]
    assert "a v1: archived." in shown and "b v1: b v1 is already archived." in shown
    published.refresh_from_db()
    assert published.status == "archived"


def test_published_templates_are_read_only(curator_client, make_template):
    template = make_template("a", publish=True)
    page = curator_client.get(change_url(template)).content.decode()
    assert 'name="name"' not in page and 'name="stage_rows-0-name"' not in page
    assert "intact" in page
    response = curator_client.post(change_url(template), {**template_form(name="Hacked"), **stage_forms([])})
    assert response.status_code == 403
    template.refresh_from_db()
    assert template.name != "Hacked"


def test_scientist_is_refused(member, make_template, team):
    template = make_template("a")
    scientist = staff(member("scientist", username="staff-sci"))
    assert scientist.get(CHANGELIST).status_code == 200, "reading is allowed"
    assert scientist.get(ADD).status_code == 403
    assert scientist.post(ADD, {**template_form(template_key="x"), **stage_forms(THREE)}).status_code == 403
    assert scientist.post(change_url(template), {**template_form(), **stage_forms([])}).status_code == 403
    scientist.post(CHANGELIST, {"action": "publish_selected", "_selected_action": [template.pk]})
    template.refresh_from_db()
    assert template.status == "draft"
    add_assignment = reverse("admin:governance_workflowtemplateassignment_add")
    assert scientist.post(add_assignment, {"template": template.pk, "team": team.pk}).status_code == 403
    assert not WorkflowTemplateAssignment.objects.exists()
    assert WorkflowTemplate.objects.count() == 1

    not_staff = Client()
    not_staff.force_login(member("scientist", username="plain-sci"))
    assert not_staff.get(ADD).status_code == 302


def test_snapshots_audit_logs_and_baseline_pages_are_read_only(curator_client, make_template):
    template = make_template("a", publish=True)
    snapshot = template.snapshots.get()
    for name in (
        "workflowtemplatesnapshot",
        "governancetemplateauditlog",
        "governancebaseline",
        "governancebaselineevent",
    ):
        assert curator_client.get(reverse(f"admin:governance_{name}_changelist")).status_code == 200
        assert curator_client.get(reverse(f"admin:governance_{name}_add")).status_code == 403
    snapshot_page = reverse("admin:governance_workflowtemplatesnapshot_change", args=[snapshot.pk])
    assert curator_client.get(snapshot_page).status_code == 200
    assert curator_client.post(snapshot_page, {"canonical_json": "{}"}).status_code == 403
    delete_page = reverse("admin:governance_workflowtemplatesnapshot_delete", args=[snapshot.pk])
    assert curator_client.post(delete_page, {"post": "yes"}).status_code == 403


def test_assignment_admin_edit_and_delete_go_through_services(curator_client, make_template, team):
    from governance.services.templates import template_assign

    a, b = make_template("a", publish=True), make_template("b", publish=True)
    assignment, _ = template_assign(template=a, actor=None, team=team)
    change = reverse("admin:governance_workflowtemplateassignment_change", args=[assignment.pk])
    response = curator_client.post(change, {"template": b.pk})
    assert response.status_code == 302, response.content.decode()[:2000]
    assignment.refresh_from_db()
    assert assignment.template_id == b.pk
    delete = reverse("admin:governance_workflowtemplateassignment_delete", args=[assignment.pk])
    assert curator_client.post(delete, {"post": "yes"}).status_code == 302
    assert not WorkflowTemplateAssignment.objects.exists()
    assert list(GovernanceTemplateAuditLog.objects.order_by("id").values_list("action", flat=True))[-2:] == [
        "assigned",
        "unassigned",
    ]


def test_a_draft_written_directly_gets_its_inline_rows_when_opened(curator_client, team):
    from tests.governance.conftest import THREE_STAGES

    draft = WorkflowTemplate.objects.create(
        team=team, template_key="raw", version=1, name="Raw", stage_blueprints=THREE_STAGES
    )
    page = curator_client.get(change_url(draft)).content.decode()
    assert 'value="Stage 1 (reviewer)"' in page
    assert draft.stage_rows.count() == 3
