"""Acceptance: one team's curators can neither see nor change another team's ladders (docs/templates-and-baselines.md).

Team A (``alpha``) runs its exports on its own template, assigned to the team and to its protocol ``assay``; the
platform's default is ``standard-release``. A curator of team B (``beta``, compliance and admin there, not a
superuser) tries everything the API offers against A; A's next export must get exactly the ladder it got before.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from config.errors import Conflict
from exports.services.executions import execution_create
from exports.services.narrative_exports import export_create
from governance.models import WorkflowTemplate, WorkflowTemplateAssignment
from governance.services.templates import template_assign, template_create
from tests.factories import member_of

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

URL = "/api/governance/templates"
DEFAULT_STAGES = [
    {"name": "Scientific review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"},
    {"name": "QA approval", "required_role": "qa_approver", "sla_hours": 48, "meaning": "Approved"},
]
A_STAGES = [*DEFAULT_STAGES, {"name": "Compliance", "required_role": "compliance", "sla_hours": 12, "meaning": "OK"}]
RUBBER_STAMP = [{"name": "Rubber stamp", "required_role": "compliance", "sla_hours": 1, "meaning": "Fine"}]


@pytest.fixture
def world(team, other_team):
    platform = template_create(
        actor=None,
        team=None,
        template_key="standard-release",
        name="Standard",
        stages=DEFAULT_STAGES,
        status="published",
    )
    a_curator = member_of(team, "compliance", username="a-curator")
    a_template = template_create(
        actor=a_curator, team=team, template_key="a-release", name="A release", stages=A_STAGES, status="published"
    )
    team_assignment, _ = template_assign(template=a_template, actor=a_curator, team=team)
    protocol_assignment, _ = template_assign(
        template=a_template, actor=a_curator, team=team, protocol_template_key="assay"
    )
    scientist = member_of(team, "scientist", username="a-sci")
    return {
        "platform": platform,
        "a_template": a_template,
        "assignments": [team_assignment, protocol_assignment],
        "a_scientist": scientist,
        "a_protocol_run": execution_create(team=team, title="Assay", owner=scientist, protocol_template_key="assay"),
        "a_plain_run": execution_create(team=team, title="Plain", owner=scientist),
        "b_curator": member_of(other_team, "compliance", "admin", username="b-curator"),
    }


def next_ladder(execution, actor) -> tuple[int, list[tuple[str, str]]]:
    export = export_create(execution=execution, actor=actor, evidence=[])
    stages = export.ladder.stages.order_by("index").values_list("name", "required_role")
    return export.template_snapshot_id, list(stages)


def test_a_curator_of_another_team_gets_404_on_every_template_snapshot_and_assignment(world, client_for):
    b_api = client_for(world["b_curator"])
    template = world["a_template"]
    assignment_ids = [assignment.pk for assignment in world["assignments"]]
    attempts = [
        b_api.get(f"{URL}/{template.pk}"),
        b_api.get(f"{URL}/{template.pk}/assignments"),
        b_api.post(f"{URL}/{template.pk}/publish"),
        b_api.post(f"{URL}/{template.pk}/archive"),
        b_api.post(f"{URL}/{template.pk}/assignments", {"team": "beta"}, format="json"),
        b_api.post(URL, {"forked_from_id": template.pk, "team": "beta", "template_key": "copy"}, format="json"),
        *(b_api.delete(f"/api/governance/assignments/{pk}") for pk in assignment_ids),
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request["PATH_INFO"], response.json())
    listed = b_api.get(URL, {"include_all": "true"}).json()["results"]
    assert [(row["template_key"], row["team"]) for row in listed] == [("standard-release", None)]
    snapshot_ids = {row["snapshot_id"] for row in listed}
    assert template.snapshots.get().pk not in snapshot_ids, "A's snapshots never appear to B"
    assert b_api.get(URL, {"team": "alpha"}).json()["results"] == []
    assert WorkflowTemplateAssignment.objects.filter(pk__in=assignment_ids).count() == 2


def test_nothing_team_b_does_changes_the_ladder_of_team_a(world, client_for):
    a_scientist = world["a_scientist"]
    before = [next_ladder(world[run], a_scientist) for run in ("a_protocol_run", "a_plain_run")]
    assert before[0][1] == before[1][1] == [(stage["name"], stage["required_role"]) for stage in A_STAGES]

    b_api = client_for(world["b_curator"])
    a_template, platform = world["a_template"], world["platform"]
    assert b_api.post(f"{URL}/{a_template.pk}/archive").status_code == 404
    refused = b_api.post(f"{URL}/{platform.pk}/archive")
    assert refused.status_code == 403, "only superusers curate platform templates"
    for key in ("a-release", "standard-release", "rubber-stamp"):
        created = b_api.post(
            URL,
            {"team": "beta", "template_key": key, "name": "Stamp", "stages": RUBBER_STAMP, "status": "published"},
            format="json",
        )
        assert created.status_code == 201 and created.json()["team"] == "beta", created.json()
    stamp = WorkflowTemplate.objects.get(team__slug="beta", template_key="rubber-stamp")
    into_a = [
        {"team": "alpha", "protocol_template": "assay"},
        {"team": "alpha"},
    ]
    for payload in into_a:
        response = b_api.post(f"{URL}/{stamp.pk}/assignments", payload, format="json")
        assert response.status_code == 404 and response.json()["error"]["code"] == "team_not_found"
    own = b_api.post(f"{URL}/{stamp.pk}/assignments", {"protocol_template": "assay"}, format="json")
    assert own.status_code == 201 and own.json()["team"] == "beta", "B may govern its own protocol runs"
    for assignment in world["assignments"]:
        assert b_api.delete(f"/api/governance/assignments/{assignment.pk}").status_code == 404

    after = [next_ladder(world[run], a_scientist) for run in ("a_protocol_run", "a_plain_run")]
    assert after == before
    with pytest.raises(Conflict) as info:
        export_create(execution=world["a_plain_run"], actor=a_scientist, evidence=[], template_key="rubber-stamp")
    assert info.value.code == "template_not_published", "A cannot even name B's template"
    named = export_create(execution=world["a_plain_run"], actor=a_scientist, evidence=[], template_key="a-release")
    assert named.template_snapshot.template_id == a_template.pk, "A's own key, not B's template of that key"
    b_run = execution_create(team=stamp.team, title="B assay", owner=world["b_curator"], protocol_template_key="assay")
    assert next_ladder(b_run, world["b_curator"])[1] == [("Rubber stamp", "compliance")]


def test_a_team_without_assignments_uses_the_platform_default(world, other_team):
    scientist = member_of(other_team, "scientist", username="b-sci")
    run = execution_create(team=other_team, title="Beta run", owner=scientist, protocol_template_key="assay")
    snapshot_id, stages = next_ladder(run, scientist)
    assert snapshot_id == world["platform"].snapshots.get().pk
    assert stages == [(stage["name"], stage["required_role"]) for stage in DEFAULT_STAGES]


def test_genomics_creates_exports_from_the_platform_default_after_seed_demo():
    call_command("seed_demo")
    default = WorkflowTemplate.objects.get(template_key="standard-release", status="published")
    assert default.team_id is None, "the demo's default ladder is a platform template"
    scientist = get_user_model().objects.get(username="demo-genomics-scientist")
    run = execution_create(
        team=scientist.memberships.get().team, title="Sequencing", owner=scientist, protocol_template_key="seq"
    )
    export = export_create(execution=run, actor=scientist, evidence=[])
    assert export.template_snapshot.template_id == default.pk
    assert export.ladder.stages.count() == len(default.stage_blueprints)
