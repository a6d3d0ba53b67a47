import pytest

from governance.models import GovernanceTemplateAuditLog, WorkflowTemplate, WorkflowTemplateAssignment
from governance.selectors.templates import template_snapshot_resolve
from governance.services.templates import template_assign
from tests.governance.conftest import THREE_STAGES, ladder
from tests.tampering import tamper_snapshot

URL = "/api/governance/templates"


@pytest.fixture
def curator_api(client_for, curator):
    return client_for(curator)


def body(**fields):
    return {"team": "alpha", "template_key": "qa-release", "name": "QA release", "stages": THREE_STAGES, **fields}


def test_acceptance_versions_forks_archive_and_pinning(curator_api, team, scientist):
    from exports.models import NarrativeExport
    from exports.services.executions import execution_create

    v1 = curator_api.post(URL, body(), format="json")
    assert v1.status_code == 201, v1.json()
    assert v1.json()["version"] == 1 and v1.json()["status"] == "draft" and v1.json()["is_latest"]
    published = curator_api.post(f"{URL}/{v1.json()['id']}/publish")
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert published.json()["snapshots"][0]["drifted"] is False

    v2 = curator_api.post(URL, body(stages=ladder("reviewer", "compliance")), format="json").json()
    assert (v2["version"], v2["forked_from_id"], v2["is_latest"]) == (2, v1.json()["id"], True)
    assert curator_api.get(f"{URL}/{v1.json()['id']}").json()["is_latest"] is False
    curator_api.post(f"{URL}/{v2['id']}/publish")

    fork = curator_api.post(
        URL, {"forked_from_id": v2["id"], "template_key": "qa-release-eu", "name": "QA EU"}, format="json"
    ).json()
    assert (fork["template_key"], fork["version"], fork["forked_from_id"]) == ("qa-release-eu", 1, v2["id"])
    assert fork["stages"] == v2["stages"]
    archived = curator_api.post(f"{URL}/{v1.json()['id']}/archive")
    assert archived.json()["status"] == "archived"

    latest = curator_api.get(URL).json()["results"]
    assert {(t["template_key"], t["version"]) for t in latest} == {("qa-release", 2), ("qa-release-eu", 1)}
    everything = curator_api.get(URL, {"include_all": "true"}).json()["results"]
    assert [(t["template_key"], t["version"]) for t in everything] == [
        ("qa-release", 2),
        ("qa-release", 1),
        ("qa-release-eu", 1),
    ]
    assert GovernanceTemplateAuditLog.objects.filter(action="forked", template_id=fork["id"]).exists()

    # An export pins the snapshot that applied when it was created and keeps it when v3 is published.
    curator_api.post(f"{URL}/{v2['id']}/assignments", {"team": team.slug}, format="json")
    execution = execution_create(team=team, title="Run", owner=scientist, protocol_template_key="assay")
    snapshot = template_snapshot_resolve(team_id=team.pk, protocol_template_key="assay")
    assert snapshot.pk == curator_api.get(f"{URL}/{v2['id']}").json()["snapshot_id"]
    export = NarrativeExport.objects.create(
        execution=execution, version=1, author=scientist, template_snapshot=snapshot
    )
    v3 = curator_api.post(URL, body(stages=ladder("reviewer")), format="json").json()
    curator_api.post(f"{URL}/{v3['id']}/publish")
    assert template_snapshot_resolve(team_id=team.pk).template_id == v3["id"]
    export.refresh_from_db()
    assert export.template_snapshot_id == snapshot.pk


def test_filters_status_key_team(curator_api, make_template, curator, team, other_team, member):
    make_template("alpha-ladder", publish=True)
    make_template("beta-ladder")
    make_template("platform-ladder", team=None, publish=True)
    member("compliance", username="beta-curator", in_team=other_team)
    make_template("hidden-ladder", team=other_team, actor=None)
    keys = lambda **q: [t["template_key"] for t in curator_api.get(URL, q).json()["results"]]  # noqa: E731
    assert keys() == ["alpha-ladder", "beta-ladder", "platform-ladder"], "own team's and platform templates only"
    assert keys(status="published") == ["alpha-ladder", "platform-ladder"]
    assert keys(status="draft") == ["beta-ladder"]
    assert keys(key="beta-ladder") == ["beta-ladder"]
    assert keys(team="alpha") == ["alpha-ladder", "beta-ladder"]
    assert keys(team="beta") == [] and keys(team="nowhere") == [], "another team's slug selects nothing"


def test_list_has_a_fixed_query_count(curator_api, make_template, django_assert_max_num_queries):
    for n in range(3):
        make_template(f"k{n}", publish=True)
    with django_assert_max_num_queries(6) as small:
        curator_api.get(URL, {"include_all": "true"})
    for n in range(3, 15):
        make_template(f"k{n}", publish=n % 2 == 0)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = curator_api.get(URL, {"include_all": "true"})
    assert response.json()["count"] == 15


def test_everyone_authenticated_may_read_but_not_anonymous(api_client, client_for, scientist, make_template):
    template = make_template("qa-release")
    assert client_for(scientist).get(f"{URL}/{template.pk}").status_code == 200
    api_client.force_authenticate(None)
    for url in (URL, f"{URL}/{template.pk}", f"{URL}/{template.pk}/assignments"):
        response = api_client.get(url)
        assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "No key", "stages": THREE_STAGES}, "template_key"),
        (body(stages=[]), "stages"),
        (
            body(stages=[{"name": "A", "required_role": "ghost", "sla_hours": 1, "meaning": "x"}]),
            "stages[0].required_role",
        ),
        (
            body(stages=[{"name": "A", "required_role": "reviewer", "sla_hours": 0, "meaning": "x"}]),
            "stages[0].sla_hours",
        ),
        (body(stages=ladder("reviewer") + ladder("reviewer")), "stages[1].name"),
        (body(stages="three"), "stages"),
        (body(template_key="Not A Slug!"), "template_key"),
        (body(retention_days="forever"), "retention_days"),
        (body(sla_defaults={"sla_hours": "x"}), "sla_defaults.sla_hours"),
    ],
)
def test_create_bad_input_is_a_400_with_field_details(curator_api, payload, field):
    response = curator_api.post(URL, payload, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"], error
    assert not WorkflowTemplate.objects.exists()


def test_malformed_json_and_unknown_ids(curator_api):
    response = curator_api.generic("POST", URL, "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_request"
    for method, url in [
        ("get", f"{URL}/999"),
        ("post", f"{URL}/999/publish"),
        ("post", f"{URL}/999/archive"),
        ("get", f"{URL}/999/assignments"),
        ("delete", "/api/governance/assignments/999"),
    ]:
        response = getattr(curator_api, method)(url)
        assert response.status_code == 404, (url, response.json())
    response = curator_api.post(URL, {"forked_from_id": 999, "name": "x"}, format="json")
    assert response.status_code == 404
    assert curator_api.get(URL, {"status": "bogus"}).status_code == 400


def test_write_endpoints_refuse_non_curators(client_for, member, make_template, team):
    template = make_template("qa-release")
    scientist_api = client_for(member("scientist", username="sci2"))
    assignment, _ = template_assign(template=template, actor=None, team=team)
    attempts = [
        scientist_api.post(URL, body(template_key="other"), format="json"),
        scientist_api.post(f"{URL}/{template.pk}/publish"),
        scientist_api.post(f"{URL}/{template.pk}/archive"),
        scientist_api.post(f"{URL}/{template.pk}/assignments", {"protocol_template": "assay"}, format="json"),
        scientist_api.delete(f"/api/governance/assignments/{assignment.pk}"),
    ]
    for response in attempts:
        assert response.status_code == 403, response.json()
        assert response.json()["error"]["code"] == "permission_denied"
    template.refresh_from_db()
    assert template.status == "draft" and WorkflowTemplateAssignment.objects.count() == 1


def test_publish_and_archive_conflicts(curator_api, make_template):
    template = make_template("qa-release", publish=True)
    again = curator_api.post(f"{URL}/{template.pk}/publish")
    assert again.status_code == 409 and again.json()["error"]["code"] == "template_not_draft"
    curator_api.post(f"{URL}/{template.pk}/archive")
    twice = curator_api.post(f"{URL}/{template.pk}/archive")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "template_archived"


def test_assignments_create_list_move_and_delete(curator_api, make_template, team, other_team, member):
    a, b = make_template("a", publish=True), make_template("b", publish=True)
    member("scientist", username="outsider", in_team=other_team)
    created = curator_api.post(f"{URL}/{a.pk}/assignments", {"team": "alpha"}, format="json")
    assert created.status_code == 201
    assert created.json() | {"created_at": None} == {
        "id": created.json()["id"],
        "template_id": a.pk,
        "template_key": "a",
        "team": "alpha",
        "protocol_template": "",
        "created_by": "casey",
        "created_at": None,
    }
    protocol = curator_api.post(f"{URL}/{a.pk}/assignments", {"protocol_template": "assay"}, format="json")
    assert protocol.status_code == 201
    listed = curator_api.get(f"{URL}/{a.pk}/assignments").json()["results"]
    assert [(x["team"], x["protocol_template"]) for x in listed] == [("alpha", ""), ("alpha", "assay")]
    moved = curator_api.post(f"{URL}/{b.pk}/assignments", {"team": "alpha"}, format="json")
    assert moved.status_code == 200 and moved.json()["id"] == created.json()["id"]
    deleted = curator_api.delete(f"/api/governance/assignments/{protocol.json()['id']}")
    assert deleted.status_code == 204
    assert list(WorkflowTemplateAssignment.objects.values_list("template_id", flat=True)) == [b.pk]


def test_assignment_bad_input_and_foreign_team(curator_api, make_template, other_team, client_for, member):
    template = make_template("a", publish=True)
    url = f"{URL}/{template.pk}/assignments"
    for payload in ({}, {"team": "", "protocol_template": ""}, {"protocol_template": "Bad Key"}, {"team": ["alpha"]}):
        response = curator_api.post(url, payload, format="json")
        assert response.status_code == 400, payload
    foreign = curator_api.post(url, {"team": "beta"}, format="json")
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "team_not_found"
    # A team assignment of another team is invisible (404), never deleted.
    beta_curator = member("compliance", username="beta-curator", in_team=other_team)
    beta_template = make_template("b", team=other_team, actor=beta_curator, publish=True)
    beta_assignment, _ = template_assign(template=beta_template, actor=beta_curator, team=other_team)
    assert curator_api.delete(f"/api/governance/assignments/{beta_assignment.pk}").status_code == 404
    assert all(x["team"] != "beta" for x in curator_api.get(url).json()["results"])


def test_drifted_snapshot_is_flagged_in_the_api(curator_api, make_template):
    template = make_template("qa-release", publish=True)
    snapshot = template.snapshots.get()
    tamper_snapshot(snapshot.pk, snapshot.canonical_json.replace("Stage 1", "Stage X"))
    detail = curator_api.get(f"{URL}/{template.pk}").json()
    assert detail["snapshots"][0]["drifted"] is True


# --- ownership and status on create ----------------------------------------------------------------------------


def test_create_names_its_team_and_returns_it(curator_api, team):
    created = curator_api.post(URL, body(), format="json")
    assert created.status_code == 201 and created.json()["team"] == "alpha"
    assert WorkflowTemplate.objects.get(pk=created.json()["id"]).team_id == team.pk
    listed = curator_api.get(URL).json()["results"]
    assert [(row["template_key"], row["team"]) for row in listed] == [("qa-release", "alpha")]


def test_create_team_refusals(curator_api, client_for, member, other_team):
    for payload, status, code in [
        (body(team="beta"), 404, "team_not_found"),
        (body(team="nowhere"), 404, "team_not_found"),
        (body(team=None), 403, "permission_denied"),
        ({k: v for k, v in body().items() if k != "team"}, 403, "permission_denied"),
        (body(team="Not A Slug"), 400, "validation_error"),
        (body(team=["alpha"]), 400, "validation_error"),
    ]:
        response = curator_api.post(URL, payload, format="json")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), payload
    reviewer_api = client_for(member("reviewer", username="rev-only"))
    response = reviewer_api.post(URL, body(), format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert not WorkflowTemplate.objects.exists()


def test_superusers_curate_platform_templates(client_for, member, curator_api):
    root = member("scientist", username="root")
    root.is_superuser = True
    root.save()
    root_api = client_for(root)
    platform = root_api.post(URL, body(team=None, template_key="standard-release"), format="json")
    assert platform.status_code == 201 and platform.json()["team"] is None
    platform_id = platform.json()["id"]
    curator_api.force_authenticate(member("compliance", username="casey"))
    assert curator_api.get(f"{URL}/{platform_id}").status_code == 200, "every team reads platform templates"
    refused = curator_api.post(f"{URL}/{platform_id}/publish")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    root_api.force_authenticate(root)
    assert root_api.post(f"{URL}/{platform_id}/publish").status_code == 200


def test_versions_stay_with_their_owner_and_platform_templates_are_forked_by_superusers(
    curator_api, make_template, member, other_team
):
    platform = make_template("standard-release", team=None, publish=True)
    own = curator_api.post(URL, body(template_key="standard-release"), format="json")
    assert (own.status_code, own.json()["version"], own.json()["team"]) == (201, 1, "alpha"), "keys are per owner"
    platform.refresh_from_db()
    assert platform.is_latest, "another owner's key is untouched"
    for payload in (
        {"forked_from_id": platform.pk},
        {"forked_from_id": platform.pk, "team": "alpha", "template_key": "alpha-release"},
    ):
        refused = curator_api.post(URL, payload, format="json")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied", payload
    next_version = curator_api.post(URL, {"forked_from_id": own.json()["id"], "team": None}, format="json")
    assert next_version.status_code == 403, "a version never leaves its owner for the platform"

    member("compliance", username="casey", in_team=other_team)
    moved = curator_api.post(URL, {"forked_from_id": own.json()["id"], "team": "beta"}, format="json")
    assert moved.status_code == 400 and moved.json()["error"]["code"] == "template_team_mismatch"
    fork = curator_api.post(
        URL, {"forked_from_id": own.json()["id"], "template_key": "beta-release", "team": "beta"}, format="json"
    )
    assert fork.status_code == 201, fork.json()
    assert (fork.json()["team"], fork.json()["forked_from_id"], fork.json()["version"]) == ("beta", own.json()["id"], 1)
    team_version = curator_api.post(URL, {"forked_from_id": own.json()["id"], "name": "v2"}, format="json")
    assert (team_version.json()["team"], team_version.json()["version"]) == ("alpha", 2)


def test_create_published_runs_the_publish_checks_and_freezes_a_snapshot(curator_api):
    created = curator_api.post(URL, body(status="published"), format="json")
    assert created.status_code == 201, created.json()
    detail = created.json()
    assert detail["status"] == "published" and detail["published_at"]
    assert len(detail["snapshots"]) == 1 and detail["snapshot_id"] == detail["snapshots"][0]["id"]
    actions = GovernanceTemplateAuditLog.objects.filter(template_id=detail["id"]).values_list("action", flat=True)
    assert sorted(actions) == ["created", "published"]
    draft = curator_api.post(URL, body(template_key="other"), format="json").json()
    assert (draft["status"], draft["snapshots"]) == ("draft", [])


@pytest.mark.parametrize("status", ["archived", "PUBLISHED", "", None, 1])
def test_create_refuses_other_statuses(curator_api, status):
    response = curator_api.post(URL, body(status=status), format="json")
    assert response.status_code == 400 and "status" in response.json()["error"]["details"]["fields"]
    assert not WorkflowTemplate.objects.exists()


def test_published_create_with_bad_content_creates_nothing(curator_api, client_for, member):
    response = curator_api.post(URL, body(status="published", stages=[]), format="json")
    assert response.status_code == 400 and "stages" in response.json()["error"]["details"]["fields"]
    scientist_api = client_for(member("scientist", username="sci-p"))
    assert scientist_api.post(URL, body(status="published"), format="json").status_code == 403
    assert not WorkflowTemplate.objects.exists()


def test_assignment_team_defaults_to_the_templates_own_and_platform_templates_need_one(curator_api, make_template):
    own = make_template("own", publish=True)
    response = curator_api.post(f"{URL}/{own.pk}/assignments", {"protocol_template": "assay"}, format="json")
    assert (response.status_code, response.json()["team"]) == (201, "alpha")
    platform = make_template("standard-release", team=None, publish=True)
    missing = curator_api.post(f"{URL}/{platform.pk}/assignments", {"protocol_template": "assay"}, format="json")
    assert missing.status_code == 409 and "team" in missing.json()["error"]["details"]["fields"]
    named = curator_api.post(
        f"{URL}/{platform.pk}/assignments", {"team": "alpha", "protocol_template": "assay"}, format="json"
    )
    assert named.status_code == 200, "moves the protocol assignment of alpha to the platform template"
    assert named.json()["template_id"] == platform.pk


def test_create_as_published_freezes_the_snapshot_publish_would(curator_api, curator):
    response = curator_api.post(URL, body(status="published"), format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "published" and created["published_at"]
    assert created["snapshot_id"] == created["snapshots"][0]["id"]
    template = WorkflowTemplate.objects.get(pk=created["id"])
    assert list(template.snapshots.values_list("pk", flat=True)) == [created["snapshot_id"]]
    actions = list(GovernanceTemplateAuditLog.objects.filter(template=template).values_list("action", flat=True))
    assert sorted(actions) == ["created", "published"]


def test_create_as_draft_is_the_default_and_has_no_snapshot(curator_api):
    for payload in (body(), body(template_key="explicit-draft", status="draft")):
        created = curator_api.post(URL, payload, format="json").json()
        assert (created["status"], created["snapshot_id"], created["snapshots"]) == ("draft", None, [])


def test_create_as_published_runs_the_publish_checks_and_leaves_nothing_behind(curator_api):
    response = curator_api.post(URL, body(status="published", stages=[]), format="json")
    assert response.status_code == 400, response.json()
    assert not WorkflowTemplate.objects.exists()
    archived = curator_api.post(URL, body(status="archived"), format="json")
    assert archived.status_code == 400 and archived.json()["error"]["code"] == "validation_error"
    assert "status" in archived.json()["error"]["details"]["fields"]


@pytest.mark.parametrize("hours", [5e-324, 0.004])
def test_hours_below_what_is_stored_are_a_400_not_a_server_error(curator_api, hours):
    stages = [{"name": "Review", "required_role": "reviewer", "sla_hours": hours, "meaning": "Reviewed"}]
    response = curator_api.post(URL, body(stages=stages), format="json")
    assert response.status_code == 400, response.content
    assert "stages[0].sla_hours" in response.json()["error"]["details"]["fields"]
    assert not WorkflowTemplate.objects.exists()


def test_fields_that_do_not_fit_the_source_templates_content_are_a_409(curator_api):
    source = curator_api.post(URL, body(stages=ladder("reviewer", "compliance")), format="json").json()
    response = curator_api.post(
        URL,
        {"team": "alpha", "forked_from_id": source["id"], "template_key": "narrow", "permitted_roles": ["reviewer"]},
        format="json",
    )
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "template_content_conflict" and error["details"]
    mismatch = curator_api.post(URL, body(stages=ladder("reviewer"), permitted_roles=["compliance"]), format="json")
    assert mismatch.status_code == 400  # wrong on its own: still a 400
