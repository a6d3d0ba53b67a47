import pytest
from django.db import IntegrityError, transaction

from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from governance.models import AuditEvent, GovernanceBaseline, GovernanceBaselineEvent
from governance.selectors.baselines import baseline_current
from governance.services.baselines import (
    baseline_approve,
    baseline_publish,
    baseline_reject,
    baseline_rollback,
    baseline_submit,
)

URL = "/api/governance/baselines"


@pytest.fixture
def people(member, scientist):
    return {
        "scientist": scientist,
        "reviewer": member("reviewer", username="rev"),
        "compliance": member("compliance", username="comp"),
        "admin": member("admin", username="boss"),
    }


@pytest.fixture
def published(people, execution):
    """Three baselines of protocol 'assay', published one after the other (v3 is current)."""

    def make(title: str) -> GovernanceBaseline:
        baseline = baseline_submit(actor=people["scientist"], execution_id=execution.pk, title=title, reviewers=["rev"])
        baseline_approve(baseline_id=baseline.pk, actor=people["reviewer"])
        return baseline_publish(baseline_id=baseline.pk, actor=people["compliance"])

    return [make(f"Baseline {n}") for n in (1, 2, 3)]


def current_ids(protocol="assay"):
    return list(
        GovernanceBaseline.objects.filter(protocol_template_key=protocol, is_current=True).values_list("pk", flat=True)
    )


def events(baseline):
    return list(baseline.events.order_by("id").values_list("event_type", flat=True))


def test_full_lifecycle_through_the_api_with_four_users_and_refusals(client_for, people, execution):
    def as_user(role):
        return client_for(people[role])

    proposal = {"execution_id": execution.pk, "title": "Assay v1", "parameters": {"od600": 0.42}, "reviewers": ["rev"]}
    assert as_user("reviewer").post(URL, proposal, format="json").status_code == 403
    created = as_user("scientist").post(URL, proposal, format="json")
    assert created.status_code == 201, created.json()
    baseline = created.json()
    assert (baseline["status"], baseline["protocol_template"], baseline["reviewers"]) == ("submitted", "assay", ["rev"])
    bid = baseline["id"]

    # Only a named reviewer decides; nobody publishes before approval.
    for user in ("scientist", "compliance", "admin"):
        response = as_user(user).post(f"{URL}/{bid}/approve", {}, format="json")
        assert response.status_code == 403, (user, response.json())
    assert as_user("compliance").post(f"{URL}/{bid}/publish").status_code == 409
    approved = as_user("reviewer").post(f"{URL}/{bid}/approve", {"comment": "Looks right"}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"

    # Publishing needs compliance or admin; the scientist and the reviewer are refused.
    for user in ("scientist", "reviewer"):
        assert as_user(user).post(f"{URL}/{bid}/publish").status_code == 403
    published = as_user("compliance").post(f"{URL}/{bid}/publish")
    assert published.status_code == 200
    assert (published.json()["status"], published.json()["version"], published.json()["is_current"]) == (
        "published",
        1,
        True,
    )

    # Rolling back is for admins only.
    for user in ("scientist", "reviewer", "compliance"):
        response = as_user(user).post(f"{URL}/{bid}/rollback", {"reason": "wrong"}, format="json")
        assert response.status_code == 403, user
    rolled = as_user("admin").post(f"{URL}/{bid}/rollback", {"reason": "Calibration error"}, format="json")
    assert rolled.status_code == 200 and rolled.json()["status"] == "rolled_back" and not rolled.json()["is_current"]
    detail = as_user("scientist").get(f"{URL}/{bid}").json()
    assert [(e["event_type"], e["actor"]) for e in detail["events"]] == [
        ("submitted", "sci"),
        ("approved", "rev"),
        ("published", "comp"),
        ("rolled_back", "boss"),
    ]
    assert AuditEvent.objects.filter(action__startswith="governance.baseline.").count() == 4


def test_reject_needs_a_reason_and_ends_the_proposal(people, execution):
    baseline = baseline_submit(actor=people["scientist"], execution_id=execution.pk, title="T", reviewers=["rev"])
    with pytest.raises(ValidationFailed):
        baseline_reject(baseline_id=baseline.pk, actor=people["reviewer"], comment=" ")
    baseline_reject(baseline_id=baseline.pk, actor=people["reviewer"], comment="Outlier run")
    with pytest.raises(Conflict):
        baseline_approve(baseline_id=baseline.pk, actor=people["reviewer"])
    with pytest.raises(Conflict):
        baseline_publish(baseline_id=baseline.pk, actor=people["compliance"])
    assert events(baseline) == ["submitted", "rejected"]


def test_submit_refusals(people, execution, member, other_team, team):
    def submit(actor, **kw):
        args = {"execution_id": execution.pk, "title": "T", "reviewers": ["rev"], **kw}
        return baseline_submit(actor=actor, **args)

    with pytest.raises(PermissionDenied):
        submit(people["reviewer"])
    with pytest.raises(ValidationFailed, match="reviewer"):
        submit(people["scientist"], reviewers=[])
    with pytest.raises(NotFound, match="'ghost' does not hold the reviewer role"):
        submit(people["scientist"], reviewers=["ghost"])
    with pytest.raises(NotFound, match="does not hold the reviewer role"):
        submit(people["scientist"], reviewers=["comp"])
    both = member("scientist", "reviewer", username="both")
    with pytest.raises(PermissionDenied, match="own proposal"):
        submit(both, reviewers=["both"])
    outsider = member("scientist", username="outsider", in_team=other_team)
    with pytest.raises(NotFound):
        submit(outsider)
    assert not GovernanceBaseline.objects.exists()


def test_only_named_reviewers_decide(people, execution, member):
    other_reviewer = member("reviewer", username="rev2")
    baseline = baseline_submit(actor=people["scientist"], execution_id=execution.pk, title="T", reviewers=["rev"])
    with pytest.raises(PermissionDenied) as info:
        baseline_approve(baseline_id=baseline.pk, actor=other_reviewer)
    assert info.value.code == "not_a_named_reviewer"


def test_submitter_cannot_publish_their_own_baseline(people, execution, member):
    pi_admin = member("pi", "admin", username="pi-admin")
    baseline = baseline_submit(actor=pi_admin, execution_id=execution.pk, title="T", reviewers=["rev"])
    baseline_approve(baseline_id=baseline.pk, actor=people["reviewer"])
    with pytest.raises(PermissionDenied):
        baseline_publish(baseline_id=baseline.pk, actor=pi_admin)


def test_publishing_versions_per_protocol_and_supersedes_the_current(published):
    first, second, third = (GovernanceBaseline.objects.get(pk=b.pk) for b in published)
    assert [b.version for b in (first, second, third)] == [1, 2, 3]
    assert [b.status for b in (first, second, third)] == ["superseded", "superseded", "published"]
    assert current_ids() == [third.pk]
    assert events(first) == ["submitted", "approved", "published", "superseded"]
    assert GovernanceBaselineEvent.objects.get(baseline=first, event_type="superseded").payload == {
        "superseded_by": second.pk
    }


def test_rollback_without_reinstate_leaves_no_current_baseline(published, people):
    current = published[-1]
    baseline_rollback(baseline_id=current.pk, actor=people["admin"], reason="Bad reagent lot")
    assert current_ids() == []
    assert baseline_current(team_id=current.team_id, protocol_template_key="assay") is None
    with pytest.raises(Conflict) as info:
        baseline_rollback(baseline_id=current.pk, actor=people["admin"], reason="again")
    assert info.value.code == "baseline_not_current"


def test_rollback_with_reinstate_makes_the_prior_version_current(published, people):
    first, _, third = published
    baseline_rollback(
        baseline_id=third.pk, actor=people["admin"], reason="Bad reagent lot", reinstate_baseline_id=first.pk
    )
    assert current_ids() == [first.pk]
    first.refresh_from_db()
    assert (first.status, first.version) == ("published", 1)
    assert events(first)[-1] == "reinstated"
    assert GovernanceBaselineEvent.objects.get(baseline=third, event_type="rolled_back").payload == {
        "reason": "Bad reagent lot",
        "reinstated_baseline_id": first.pk,
    }
    # The rolled-back v3 can itself be reinstated later.
    baseline_rollback(baseline_id=first.pk, actor=people["admin"], reason="v3 was fine", reinstate_baseline_id=third.pk)
    assert current_ids() == [third.pk]


def test_rollback_refusals(published, people, execution):
    first, second, third = published
    with pytest.raises(ValidationFailed):
        baseline_rollback(baseline_id=third.pk, actor=people["admin"], reason="")
    with pytest.raises(ValidationFailed):
        baseline_rollback(baseline_id=third.pk, actor=people["admin"], reason="x", reinstate_baseline_id=third.pk)
    pending = baseline_submit(actor=people["scientist"], execution_id=execution.pk, title="T", reviewers=["rev"])
    with pytest.raises(ValidationFailed):
        baseline_rollback(baseline_id=third.pk, actor=people["admin"], reason="x", reinstate_baseline_id=pending.pk)
    with pytest.raises(Conflict):
        baseline_rollback(baseline_id=second.pk, actor=people["admin"], reason="x")
    assert current_ids() == [third.pk]


def test_the_database_allows_one_current_baseline_per_protocol(published):
    first, _, third = published
    with pytest.raises(IntegrityError), transaction.atomic():
        GovernanceBaseline.objects.filter(pk=first.pk).update(is_current=True, status="published")
    with pytest.raises(IntegrityError), transaction.atomic():
        GovernanceBaseline.objects.filter(pk=third.pk).update(status="rolled_back")  # current must be published
    assert current_ids() == [third.pk]


def test_baselines_are_team_scoped_and_listed_with_filters(client_for, published, member, other_team):
    outsider = client_for(member("admin", username="outsider", in_team=other_team))
    assert outsider.get(URL).json()["count"] == 0
    assert outsider.get(f"{URL}/{published[0].pk}").status_code == 404
    assert outsider.post(f"{URL}/{published[-1].pk}/rollback", {"reason": "x"}, format="json").status_code == 404
    insider = client_for(published[0].submitted_by)
    assert insider.get(URL).json()["count"] == 3
    current = insider.get(URL, {"is_current": "true", "protocol_template": "assay"}).json()["results"]
    assert [b["id"] for b in current] == [published[-1].pk]
    assert insider.get(URL, {"status": "superseded"}).json()["count"] == 2
    assert insider.get(URL, {"status": "nonsense"}).status_code == 400


def test_api_bad_input(client_for, people, execution, api_client):
    sci = client_for(people["scientist"])
    for payload in (
        {},
        {"execution_id": "x", "title": "T", "reviewers": ["rev"]},
        {"execution_id": execution.pk, "title": "T", "reviewers": []},
        {"execution_id": execution.pk, "title": "T", "reviewers": "rev"},
        {"execution_id": execution.pk, "title": "T", "reviewers": ["rev"], "parameters": [1]},
    ):
        response = sci.post(URL, payload, format="json")
        assert response.status_code == 400, payload
        assert response.json()["error"]["code"] == "validation_error"
    assert sci.post(URL, {"execution_id": 999, "title": "T", "reviewers": ["rev"]}, format="json").status_code == 404
    for action, body in (("approve", {}), ("reject", {"comment": "x"}), ("publish", {}), ("rollback", {"reason": "x"})):
        assert sci.post(f"{URL}/999/{action}", body, format="json").status_code == 404
    api_client.force_authenticate(None)
    assert api_client.get(URL).status_code == 401
    assert api_client.post(URL, {}, format="json").status_code == 401


def test_execution_without_protocol_cannot_define_a_baseline(people, team):
    from exports.services.executions import execution_create

    execution = execution_create(team=team, title="Free run", owner=people["scientist"], protocol_template_key="")
    with pytest.raises(ValidationFailed) as info:
        baseline_submit(actor=people["scientist"], execution_id=execution.pk, title="T", reviewers=["rev"])
    assert info.value.code == "execution_without_protocol"


def test_demo_users_run_the_baseline_flow_each_refused_where_rbac_says(db, api_client):
    from django.core.management import call_command

    from exports.models import Execution
    from governance.demo import demo_user

    call_command("seed_demo")
    execution = Execution.objects.filter(team__slug="biolabs").exclude(protocol_template_key="").first()
    users = {name: demo_user(f"demo-{name}") for name in ("scientist", "reviewer", "compliance", "admin")}

    def post(user, path, data=None):
        api_client.force_authenticate(users[user])
        return api_client.post(f"{URL}{path}", data or {}, format="json")

    proposal = {"execution_id": execution.pk, "title": "Reference run", "reviewers": ["demo-reviewer"]}
    assert post("reviewer", "", proposal).status_code == 403
    first = post("scientist", "", proposal).json()["id"]
    assert post("compliance", f"/{first}/approve").status_code == 403
    assert post("reviewer", f"/{first}/approve").status_code == 200
    assert post("scientist", f"/{first}/publish").status_code == 403
    assert post("compliance", f"/{first}/publish").json()["version"] == 1
    second = post("scientist", "", {**proposal, "title": "Improved run"}).json()["id"]
    post("reviewer", f"/{second}/approve")
    assert post("admin", f"/{second}/publish").json()["is_current"] is True
    assert post("compliance", f"/{second}/rollback", {"reason": "x"}).status_code == 403
    rolled = post("admin", f"/{second}/rollback", {"reason": "Drifted calibration", "reinstate_baseline_id": first})
    assert rolled.status_code == 200
    assert current_ids(execution.protocol_template_key) == [first]


def test_a_curator_of_another_team_gets_404_on_every_baseline_operation(
    client_for, people, execution, member, other_team
):
    submitted = baseline_submit(actor=people["scientist"], execution_id=execution.pk, title="Open", reviewers=["rev"])
    outsider_user = member("admin", "compliance", "reviewer", "scientist", username="b-all", in_team=other_team)
    outsider = client_for(outsider_user)
    attempts = [
        outsider.get(f"{URL}/{submitted.pk}"),
        outsider.post(f"{URL}/{submitted.pk}/approve", {}, format="json"),
        outsider.post(f"{URL}/{submitted.pk}/reject", {"comment": "no"}, format="json"),
        outsider.post(f"{URL}/{submitted.pk}/publish"),
        outsider.post(f"{URL}/{submitted.pk}/rollback", {"reason": "x"}, format="json"),
        outsider.post(URL, {"execution_id": execution.pk, "title": "Mine", "reviewers": ["rev"]}, format="json"),
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request["PATH_INFO"], response.json())
    assert outsider.get(URL, {"team": "alpha"}).json()["count"] == 0
    assert outsider.get(URL, {"team": "beta"}).json()["count"] == 0
    submitted.refresh_from_db()
    assert submitted.status == "submitted" and list(submitted.events.values_list("event_type", flat=True)) == [
        "submitted"
    ]


def test_reviewers_outside_the_team_look_like_unknown_users(people, execution, member, other_team):
    member("reviewer", username="beta-rev", in_team=other_team)
    messages = []
    for name in ("beta-rev", "nobody-at-all"):
        with pytest.raises(NotFound) as info:
            baseline_submit(actor=people["scientist"], execution_id=execution.pk, title="T", reviewers=[name])
        messages.append(info.value.details["fields"]["reviewers"][0].replace(name, "NAME"))
    assert messages[0] == messages[1], "whether a user exists in another team stays private"
