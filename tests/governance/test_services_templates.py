import json

import pytest
from django.db import connection

from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from governance.choices import TemplateStatus
from governance.models import (
    AuditEvent,
    GovernanceTemplateAuditLog,
    WorkflowTemplate,
    WorkflowTemplateAssignment,
    WorkflowTemplateSnapshot,
)
from governance.selectors.templates import (
    snapshot_document,
    snapshot_has_drifted,
    snapshots_drifted,
    template_snapshot_for_key,
    template_snapshot_resolution,
    template_snapshot_resolve,
)
from governance.services.templates import (
    assignment_delete,
    template_archive,
    template_assign,
    template_create,
    template_fork,
    template_preview_record,
    template_publish,
    template_update,
)
from tests.governance.conftest import THREE_STAGES, ladder
from tests.tampering import tamper_snapshot


def actions(template):
    return list(
        GovernanceTemplateAuditLog.objects.filter(template=template).order_by("id").values_list("action", flat=True)
    )


def test_create_makes_a_validated_draft_with_inline_rows_and_an_audit_row(make_template, curator):
    template = make_template("qa-release", description="QA")
    assert (template.version, template.status, template.is_latest, template.forked_from_id) == (1, "draft", True, None)
    assert [row.name for row in template.stage_rows.order_by("position")] == [s["name"] for s in THREE_STAGES]
    assert template.permitted_roles == ["compliance", "qa_approver", "reviewer"]
    assert template.sla_defaults == {"sla_hours": 48, "escalate_after_hours": 24}
    assert actions(template) == ["created"]
    assert AuditEvent.objects.filter(action="workflow_template.created", object_id=str(template.pk)).exists()


def test_same_key_makes_the_next_version_and_retires_the_previous_latest(make_template):
    v1 = make_template("qa-release", publish=True)
    v2 = make_template("qa-release", stages=ladder("reviewer"))
    v1.refresh_from_db()
    assert (v2.version, v2.is_latest, v2.forked_from_id) == (2, True, v1.pk)
    assert (v1.is_latest, v1.status) == (False, TemplateStatus.PUBLISHED)
    log = GovernanceTemplateAuditLog.objects.get(template=v2)
    assert log.details["retired_ids"] == [v1.pk]


def test_fork_into_a_new_key_copies_content_and_keeps_lineage(make_template, curator):
    v1 = make_template("qa-release", publish=True, retention_days=400)
    fork = template_fork(template=v1, actor=curator, template_key="qa-release-eu", name="QA EU")
    v1.refresh_from_db()
    assert (fork.template_key, fork.version, fork.forked_from_id, fork.status) == ("qa-release-eu", 1, v1.pk, "draft")
    assert fork.stage_blueprints == v1.stage_blueprints and fork.retention_days == 400
    assert v1.is_latest, "forking into another key leaves the source the latest of its own key"
    assert actions(fork) == ["forked"]


def test_fork_without_a_key_is_the_next_version_of_the_source(make_template, curator, team):
    v1 = make_template("qa-release", publish=True)
    v2 = template_create(actor=curator, team=team, forked_from=v1, stages=ladder("reviewer", "compliance"))
    v1.refresh_from_db()
    assert (v2.template_key, v2.version, v2.name, v1.is_latest) == ("qa-release", 2, v1.name, False)
    assert v2.team_id == team.pk


def test_create_refuses_bad_content_and_missing_key(curator, team):
    with pytest.raises(ValidationFailed) as info:
        template_create(actor=curator, team=team, template_key="bad", name="Bad", stages=[])
    assert info.value.details["fields"]["stages"] == ["A template needs at least one stage."]
    with pytest.raises(ValidationFailed):
        template_create(actor=curator, team=team, name="No key", stages=THREE_STAGES)
    with pytest.raises(ValidationFailed):
        template_create(actor=curator, team=team, template_key="k", name="K", stages=THREE_STAGES, status="archived")
    assert not WorkflowTemplate.objects.exists()


@pytest.mark.parametrize("role", ["scientist", "reviewer", "qa_approver", "auditor"])
def test_only_compliance_or_admin_change_templates(member, make_template, role, team):
    draft = make_template("qa-release")
    outsider = member(role, username=f"u-{role}")
    with pytest.raises(PermissionDenied):
        template_create(actor=outsider, team=team, template_key="x", name="X", stages=THREE_STAGES)
    with pytest.raises(PermissionDenied):
        template_publish(template=draft, actor=outsider)
    with pytest.raises(PermissionDenied):
        template_archive(template=draft, actor=outsider)
    with pytest.raises(PermissionDenied):
        template_update(template=draft, actor=outsider, name="Y")


def test_admin_role_may_curate(member, team):
    admin_user = member("admin", username="root")
    template = template_create(actor=admin_user, team=team, template_key="k", name="K", stages=THREE_STAGES)
    assert template_publish(template=template, actor=admin_user).pk


def test_update_changes_drafts_only(make_template, curator):
    draft = make_template("qa-release")
    template_update(template=draft, actor=curator, name="Renamed", stages=ladder("reviewer"))
    draft.refresh_from_db()
    assert draft.name == "Renamed" and len(draft.stage_blueprints) == 1 and draft.stage_rows.count() == 1
    template_publish(template=draft, actor=curator)
    with pytest.raises(Conflict) as info:
        template_update(template=draft, actor=curator, name="Again")
    assert info.value.code == "template_not_draft"


def test_publish_freezes_a_canonical_snapshot_and_logs_it(make_template, curator):
    draft = make_template("qa-release")
    snapshot = template_publish(template=draft, actor=curator)
    draft.refresh_from_db()
    assert draft.status == "published" and draft.published_at
    document = snapshot_document(snapshot)
    assert document["stages"] == [{**stage, "reject_meaning": "Rejected"} for stage in THREE_STAGES]
    assert set(document["stages"][0]) == {"name", "required_role", "sla_hours", "meaning", "reject_meaning"}
    assert document["sla_defaults"] == {"sla_hours": 48, "escalate_after_hours": 24}
    assert json.loads(snapshot.canonical_json) == document
    log = GovernanceTemplateAuditLog.objects.get(action="published")
    assert (log.snapshot_id, log.actor_username, log.template_version) == (snapshot.pk, "casey", 1)
    with pytest.raises(Conflict):
        template_publish(template=draft, actor=curator)


def test_publish_revalidates_drafts_written_directly(curator, team):
    raw = WorkflowTemplate.objects.create(
        team=team,
        template_key="raw",
        version=1,
        name="Raw",
        stage_blueprints=[{"name": "A", "required_role": "ghost"}],
    )
    with pytest.raises(ValidationFailed):
        template_publish(template=raw, actor=curator)
    raw.refresh_from_db()
    assert raw.status == "draft" and not raw.snapshots.exists()


def test_publish_without_actor_is_the_system_and_keeps_the_old_signature(db):
    template = WorkflowTemplate.objects.create(
        template_key="sys", version=1, name="System", stage_blueprints=THREE_STAGES
    )
    snapshot = template_publish(template=template)
    assert snapshot.content_sha256 and template.stage_rows.count() == 3


def test_archive_from_draft_or_published_and_never_twice(make_template, curator):
    published = make_template("a", publish=True)
    draft = make_template("b")
    template_archive(template=published, actor=curator)
    template_archive(template=draft, actor=curator)
    published.refresh_from_db()
    assert published.status == "archived" and published.archived_at
    assert actions(published) == ["created", "published", "archived"]
    with pytest.raises(Conflict):
        template_archive(template=published, actor=curator)
    with pytest.raises(Conflict):
        template_publish(template=draft, actor=curator)


def test_snapshots_are_immutable_in_the_orm(make_template):
    snapshot = make_template("a", publish=True).snapshots.get()
    snapshot.canonical_json = "{}"
    with pytest.raises(Conflict):
        snapshot.save()
    with pytest.raises(Conflict):
        snapshot.delete()
    with pytest.raises(Conflict):
        WorkflowTemplateSnapshot.objects.filter(pk=snapshot.pk).update(content_sha256="0" * 64)
    with pytest.raises(Conflict):
        WorkflowTemplateSnapshot.objects.all().delete()
    with pytest.raises(Conflict):
        GovernanceTemplateAuditLog.objects.all().delete()


# --- assignments and resolution ------------------------------------------------------------------------------


def test_resolution_prefers_protocol_then_team_then_default(make_template, curator, team, settings):
    settings.DOSSIER_DEFAULT_TEMPLATE_KEY = "standard"
    assert template_snapshot_resolve(team_id=team.pk) is None
    make_template("standard", publish=True)
    assert template_snapshot_resolve(team_id=team.pk) is None, "the default is the platform's template, not a team's"
    default = make_template("standard", team=None, publish=True).snapshots.get()
    team_snapshot = make_template("team-ladder", publish=True).snapshots.get()
    protocol_snapshot = make_template("assay-ladder", publish=True).snapshots.get()
    assert template_snapshot_resolve(team_id=team.pk, protocol_template_key="assay") == default
    template_assign(template=team_snapshot.template, actor=curator, team=team)
    assert template_snapshot_resolve(team_id=team.pk, protocol_template_key="assay") == team_snapshot
    template_assign(template=protocol_snapshot.template, actor=curator, team=team, protocol_template_key="assay")
    assert template_snapshot_resolve(team_id=team.pk, protocol_template_key="assay") == protocol_snapshot
    assert template_snapshot_resolve(team_id=team.pk, protocol_template_key="other") == team_snapshot
    resolution = template_snapshot_resolution(team_id=team.pk, protocol_template_key="assay")
    assert resolution.source == "protocol" and not resolution.drifted


def test_assignment_follows_new_published_versions_and_falls_back_when_archived(make_template, curator, team):
    v1 = make_template("qa-release", publish=True)
    template_assign(template=v1, actor=curator, team=team)
    v2 = make_template("qa-release")
    assert template_snapshot_resolve(team_id=team.pk) == v1.snapshots.get(), "a draft v2 does not apply yet"
    template_publish(template=v2, actor=curator)
    assert template_snapshot_resolve(team_id=team.pk) == v2.snapshots.get()
    template_archive(template=v2, actor=curator)
    assert template_snapshot_resolve(team_id=team.pk) == v1.snapshots.get()


def test_unpublished_assignment_falls_through_with_a_note(make_template, curator, team, settings):
    settings.DOSSIER_DEFAULT_TEMPLATE_KEY = "standard"
    template_assign(template=make_template("draft-only"), actor=curator, team=team)
    default = make_template("standard", team=None, publish=True).snapshots.get()
    resolution = template_snapshot_resolution(team_id=team.pk)
    assert resolution.snapshot == default and resolution.source == "default"
    assert resolution.notes == ["The team template 'draft-only' has no published version."]


def test_assign_moves_an_existing_target_and_is_idempotent(make_template, curator, team):
    a, b = make_template("a", publish=True), make_template("b", publish=True)
    first, created = template_assign(template=a, actor=curator, team=team)
    again, created_again = template_assign(template=a, actor=curator, team=team)
    moved, created_moved = template_assign(template=b, actor=curator, team=team)
    assert created and not created_again and not created_moved
    assert first.pk == again.pk == moved.pk and moved.template_id == b.pk
    assert WorkflowTemplateAssignment.objects.count() == 1
    log = GovernanceTemplateAuditLog.objects.filter(action="assigned").order_by("id").last()
    assert log.details["previous_template_id"] == a.pk and log.team_id == team.pk


def test_assign_refusals(make_template, curator, member, team, other_team):
    template = make_template("a", publish=True)
    both = member("compliance", username="both", in_team=other_team)
    member("compliance", username="both")
    with pytest.raises(ValidationFailed) as info:
        template_assign(template=template, actor=both, team=other_team)
    assert info.value.code == "template_team_mismatch", "a team's template is assigned only inside that team"
    with pytest.raises(PermissionDenied):
        template_assign(template=template, actor=curator, team=other_team)
    with pytest.raises(PermissionDenied):
        template_assign(
            template=template, actor=member("scientist", username="s"), team=team, protocol_template_key="assay"
        )
    template_archive(template=template, actor=curator)
    with pytest.raises(Conflict):
        template_assign(template=template, actor=curator, team=team)


def test_assignment_delete_is_audited_and_needs_a_curator_of_the_team(make_template, curator, member, team):
    assignment, _ = template_assign(template=make_template("a", publish=True), actor=curator, team=team)
    with pytest.raises(PermissionDenied):
        assignment_delete(assignment=assignment, actor=member("scientist", username="s"))
    assignment_delete(assignment=assignment, actor=curator)
    assert not WorkflowTemplateAssignment.objects.exists()
    assert GovernanceTemplateAuditLog.objects.filter(action="unassigned").count() == 1


def test_preview_record_writes_the_audit_rows(make_template, scientist, team):
    snapshot = make_template("a", publish=True).snapshots.get()
    row = template_preview_record(
        actor=scientist, execution_id=42, team_id=team.pk, snapshot=snapshot, details={"warnings": ["x"]}
    )
    assert (row.action, row.execution_id, row.snapshot_id, row.template_key) == ("previewed", 42, snapshot.pk, "a")
    assert row.details == {"snapshot_sha256": snapshot.content_sha256, "warnings": ["x"]}
    assert AuditEvent.objects.filter(action="workflow_template.previewed", team_id=team.pk).exists()
    empty = template_preview_record(actor=scientist, execution_id=43, team_id=team.pk, snapshot=None)
    assert empty.template_id is None and empty.details["snapshot_sha256"] is None


# --- drift ----------------------------------------------------------------------------------------------------


def test_tampered_snapshot_is_reported_as_drift_and_refused(make_template, curator, team):
    template = make_template("qa-release", publish=True)
    template_assign(template=template, actor=curator, team=team)
    snapshot = template.snapshots.get()
    assert snapshots_drifted() == []
    document = snapshot_document(snapshot)
    document["stages"] = document["stages"][:1]
    tamper_snapshot(snapshot.pk, json.dumps(document, sort_keys=True, separators=(",", ":")))

    assert [s.pk for s in snapshots_drifted()] == [snapshot.pk]
    resolution = template_snapshot_resolution(team_id=team.pk)
    assert resolution.snapshot.pk == snapshot.pk and resolution.drifted
    with pytest.raises(Conflict) as info:
        template_snapshot_resolve(team_id=team.pk)
    assert info.value.code == "template_snapshot_drift"
    assert info.value.status_code == 409
    assert info.value.details["recorded_sha256"] == snapshot.content_sha256
    assert info.value.details["computed_sha256"] != snapshot.content_sha256
    assert "no longer matches its recorded sha256" in info.value.message


@pytest.mark.postgres
def test_the_database_refuses_to_change_or_delete_snapshots_and_logs(make_template):
    from django.db import DatabaseError, transaction

    snapshot = make_template("a", publish=True).snapshots.get()
    statements = [
        ("UPDATE execution_narrative_workflow_template_snapshots SET canonical_json = '{}' WHERE id = %s", snapshot.pk),
        ("DELETE FROM execution_narrative_workflow_template_snapshots WHERE id = %s", snapshot.pk),
        ("UPDATE governance_template_audit_logs SET action = 'x' WHERE snapshot_id = %s", snapshot.pk),
        ("DELETE FROM governance_template_audit_logs WHERE snapshot_id = %s", snapshot.pk),
    ]
    for sql, param in statements:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [param])
    assert WorkflowTemplateSnapshot.objects.filter(pk=snapshot.pk, canonical_json=snapshot.canonical_json).exists()


def test_check_template_snapshots_command_reports_drift(make_template, capsys):
    from django.core.management import call_command

    snapshot = make_template("qa-release", publish=True).snapshots.get()
    call_command("check_template_snapshots")
    assert "template snapshots intact" in capsys.readouterr().out
    tamper_snapshot(snapshot.pk, snapshot.canonical_json.replace("Stage 1", "Stage X"))
    with pytest.raises(SystemExit) as exit_info:
        call_command("check_template_snapshots")
    assert exit_info.value.code == 3
    out = capsys.readouterr().out
    assert f"drift: snapshot {snapshot.pk} (qa-release v1)" in out and "1 drifted snapshot(s)" in out


# --- ownership --------------------------------------------------------------------------------------------------


def test_new_snapshots_are_format_3_and_name_their_team(make_template):
    team_snapshot = make_template("a", publish=True).snapshots.get()
    platform_snapshot = make_template("b", team=None, publish=True).snapshots.get()
    assert team_snapshot.format_version == platform_snapshot.format_version == 4
    assert snapshot_document(team_snapshot)["team"] == "alpha"
    assert snapshot_document(platform_snapshot)["team"] is None
    assert snapshot_document(team_snapshot)["format_version"] == 4
    assert all(stage["reject_meaning"] for stage in snapshot_document(team_snapshot)["stages"])
    assert not snapshot_has_drifted(team_snapshot)


def test_keys_are_unique_per_owner(make_template, member, other_team):
    alpha_v1 = make_template("qa-release", publish=True)
    beta_curator = member("compliance", username="beta-curator", in_team=other_team)
    beta_v1 = make_template("qa-release", team=other_team, actor=beta_curator)
    platform_v1 = make_template("qa-release", team=None)
    alpha_v2 = make_template("qa-release")
    alpha_v1.refresh_from_db()
    beta_v1.refresh_from_db()
    platform_v1.refresh_from_db()
    assert [t.version for t in (alpha_v1, beta_v1, platform_v1, alpha_v2)] == [1, 1, 1, 2]
    assert (alpha_v1.is_latest, beta_v1.is_latest, platform_v1.is_latest) == (False, True, True)
    assert alpha_v2.forked_from_id == alpha_v1.pk


def test_a_named_key_resolves_to_the_teams_own_then_the_platforms_never_another_teams(
    make_template, member, team, other_team
):
    beta_curator = member("compliance", username="beta-curator", in_team=other_team)
    make_template("hidden", team=other_team, actor=beta_curator, publish=True)
    assert template_snapshot_for_key(team_id=team.pk, template_key="hidden") is None
    platform = make_template("shared", team=None, publish=True).snapshots.get()
    assert template_snapshot_for_key(team_id=team.pk, template_key="shared") == platform
    own = make_template("shared", publish=True).snapshots.get()
    assert template_snapshot_for_key(team_id=team.pk, template_key="shared") == own
    assert template_snapshot_for_key(team_id=other_team.pk, template_key="shared") == platform


def test_curators_act_only_in_their_own_teams(make_template, member, other_team, curator):
    beta_curator = member("compliance", username="beta-curator", in_team=other_team)
    alpha_draft = make_template("a")
    platform_draft = make_template("p", team=None)
    for actor, template in ((beta_curator, alpha_draft), (curator, platform_draft)):
        with pytest.raises(PermissionDenied):
            template_publish(template=template, actor=actor)
        with pytest.raises(PermissionDenied):
            template_archive(template=template, actor=actor)
        with pytest.raises(PermissionDenied):
            template_update(template=template, actor=actor, name="x")
    with pytest.raises(PermissionDenied):
        template_create(actor=curator, team=other_team, template_key="x", name="X", stages=THREE_STAGES)
    with pytest.raises(PermissionDenied):
        template_create(actor=curator, team=None, template_key="x", name="X", stages=THREE_STAGES)
    with pytest.raises(NotFound):
        template_fork(template=alpha_draft, actor=beta_curator, template_key="copy", team=other_team)
    assignment, _ = template_assign(template=make_template("c", publish=True), actor=curator, team=alpha_draft.team)
    with pytest.raises(PermissionDenied):
        assignment_delete(assignment=assignment, actor=beta_curator)
    assert WorkflowTemplateAssignment.objects.filter(pk=assignment.pk).exists()
