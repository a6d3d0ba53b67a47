"""The migration to team-owned templates (governance 0008–0010) loses nothing: exports keep their snapshots,
snapshots keep their content and hashes (format 1), and every template and protocol assignment gets the owner
that docs/templates-and-baselines.md describes."""

import hashlib
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from governance.models import WorkflowTemplate, WorkflowTemplateAssignment, WorkflowTemplateSnapshot
from governance.selectors.templates import snapshot_has_drifted, template_snapshot_resolve

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BEFORE_OWNERS = ("governance", "0007_login_failure_counters_and_hashed_tokens")
STAGES = [{"name": "Review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"}]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest_targets():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def before_owner_targets():
    """Governance just before team ownership; every other app as it is now."""
    return [BEFORE_OWNERS, *(node for node in latest_targets() if node[0] != "governance")]


def legacy_world(apps):
    """Templates, snapshots, assignments and exports as the release before team ownership left them."""
    Team = apps.get_model("governance", "Team")
    Role = apps.get_model("governance", "Role")
    Membership = apps.get_model("governance", "Membership")
    User = apps.get_model("auth", "User")
    Template = apps.get_model("governance", "WorkflowTemplate")
    Snapshot = apps.get_model("governance", "WorkflowTemplateSnapshot")
    Assignment = apps.get_model("governance", "WorkflowTemplateAssignment")
    Execution = apps.get_model("exports", "Execution")
    Export = apps.get_model("exports", "NarrativeExport")

    alpha = Team.objects.create(slug="alpha", name="Alpha")
    beta = Team.objects.create(slug="beta", name="Beta")
    gamma = Team.objects.create(slug="gamma", name="Gamma")
    user = User.objects.create(username="old-curator")
    Membership.objects.create(user=user, team=gamma, role=Role.objects.get(key="compliance"))

    def published(key, *, created_by=None):
        template = Template.objects.create(
            template_key=key, version=1, name=key, status="published", stage_blueprints=STAGES, created_by=created_by
        )
        canonical = json.dumps(
            {"template_key": key, "version": 1, "name": key, "stages": STAGES}, sort_keys=True, separators=(",", ":")
        )
        snapshot = Snapshot.objects.create(
            template=template,
            template_key=key,
            version=1,
            canonical_json=canonical,
            content_sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        )
        return template, snapshot

    default, default_snapshot = published("standard-release")
    alpha_only, alpha_snapshot = published("alpha-only")
    shared, shared_snapshot = published("shared")
    protocol, _ = published("assay-ladder")
    drafted, _ = published("gamma-draft", created_by=user)
    orphan, _ = published("orphan")
    Assignment.objects.create(template=alpha_only, team=alpha)
    Assignment.objects.create(template=shared, team=beta)
    Assignment.objects.create(template=protocol, protocol_template_key="assay")
    run = lambda team, key="": Execution.objects.create(  # noqa: E731
        team=team, title="Run", owner=user, protocol_template_key=key
    )
    exports = {
        "default": Export.objects.create(
            execution=run(alpha), version=1, author=user, template_snapshot=default_snapshot
        ),
        "alpha": Export.objects.create(execution=run(alpha), version=1, author=user, template_snapshot=alpha_snapshot),
        "shared": Export.objects.create(
            execution=run(alpha), version=1, author=user, template_snapshot=shared_snapshot
        ),
    }
    run(beta, "assay")
    hashes = dict(Snapshot.objects.values_list("id", "content_sha256"))
    return {
        "teams": {"alpha": alpha.pk, "beta": beta.pk, "gamma": gamma.pk},
        "exports": {name: (export.pk, export.template_snapshot_id) for name, export in exports.items()},
        "hashes": hashes,
        "templates": {t.template_key: t.pk for t in (default, alpha_only, shared, protocol, drafted, orphan)},
    }


def test_existing_templates_get_owners_and_lose_nothing():
    try:
        world = legacy_world(migrate(before_owner_targets()))
        migrate(latest_targets())
        teams, templates = world["teams"], world["templates"]
        owner = lambda key: WorkflowTemplate.objects.get(pk=templates[key]).team_id  # noqa: E731
        assert owner("standard-release") is None, "the default ladder is every team's: a platform template"
        assert owner("alpha-only") == teams["alpha"], "used by one team only"
        assert owner("shared") is None, "used by two teams (an alpha export, a beta assignment)"
        assert owner("assay-ladder") == teams["beta"], "its protocol runs only in beta"
        assert owner("gamma-draft") == teams["gamma"], "unused: the one team its creator curates"
        assert owner("orphan") is None, "unused, no creator: platform"

        protocol_assignments = WorkflowTemplateAssignment.objects.exclude(protocol_template_key="")
        assert list(protocol_assignments.values_list("team_id", "template_id")) == [
            (teams["beta"], templates["assay-ladder"])
        ], "a team template's protocol assignment stays in its team"

        from exports.models import NarrativeExport

        for export_id, snapshot_id in world["exports"].values():
            assert NarrativeExport.objects.get(pk=export_id).template_snapshot_id == snapshot_id
        for snapshot in WorkflowTemplateSnapshot.objects.all():
            assert snapshot.format_version == 1
            assert snapshot.content_sha256 == world["hashes"][snapshot.pk]
            assert not snapshot_has_drifted(snapshot)
        call_command("check_template_snapshots")
        assert template_snapshot_resolve(team_id=teams["alpha"]).template_id == templates["alpha-only"]
        assert template_snapshot_resolve(team_id=teams["gamma"]).template_id == templates["standard-release"]
    finally:
        migrate(latest_targets())


def test_a_platform_templates_protocol_assignment_is_kept_for_every_team():
    try:
        apps = migrate(before_owner_targets())
        world = legacy_world(apps)
        Assignment = apps.get_model("governance", "WorkflowTemplateAssignment")
        Assignment.objects.filter(protocol_template_key="assay").update(template_id=world["templates"]["shared"])
        migrate(latest_targets())
        rows = WorkflowTemplateAssignment.objects.filter(protocol_template_key="assay")
        assert sorted(rows.values_list("team_id", flat=True)) == sorted(world["teams"].values())
        assert set(rows.values_list("template_id", flat=True)) == {world["templates"]["shared"]}
        for team_id in world["teams"].values():
            resolved = template_snapshot_resolve(team_id=team_id, protocol_template_key="assay")
            assert resolved.template_id == world["templates"]["shared"], "every team's next ladder is unchanged"
    finally:
        migrate(latest_targets())
