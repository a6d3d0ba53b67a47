"""manage.py migrate_exports [--dry-run]: backfill template snapshots as they applied at each export's creation."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from exports.events import EventType
from exports.models import NarrativeExport
from exports.services.executions import EventInput, execution_create, timeline_append
from governance.models import AuditEvent
from governance.services.templates import template_assign, template_create, template_publish
from tests.tampering import tamper_snapshot

pytestmark = pytest.mark.django_db

STAGES = [{"name": "Review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"}]


def publish(key: str):
    return template_publish(template=template_create(actor=None, name=key, template_key=key, stages=STAGES))


def legacy_export(execution, author, *, created_at=None) -> NarrativeExport:
    """An export as older releases left it: no pinned snapshot."""
    version = NarrativeExport.objects.filter(execution=execution).count() + 1
    export = NarrativeExport.objects.create(execution=execution, version=version, author=author)
    if created_at is not None:
        NarrativeExport.objects.filter(pk=export.pk).update(created_at=created_at)
        export.refresh_from_db()
    return export


@pytest.fixture
def legacy(team, other_team, scientist, member):
    """One export per outcome: pinned to the default, to its protocol's template, and three anomalies."""
    long_ago = timezone.now() - timedelta(days=365)
    before_any = legacy_export(
        execution_create(team=team, title="Old", owner=scientist), scientist, created_at=long_ago
    )

    default_v1 = publish("standard-release")
    assay = publish("assay-release")
    template_assign(template=assay.template, actor=None, team=team, protocol_template_key="assay")
    outsider = member("scientist", in_team=other_team, username="outsider")
    beta = publish("beta-release")
    template_assign(template=beta.template, actor=None, team=other_team)

    plain = legacy_export(execution_create(team=team, title="Plain", owner=scientist), scientist)
    protocol = legacy_export(
        execution_create(team=team, title="Assay", owner=scientist, protocol_template_key="assay"), scientist
    )
    drifted = legacy_export(execution_create(team=other_team, title="Beta", owner=outsider), outsider)
    recorded = legacy_export(execution_create(team=team, title="Recorded", owner=scientist), scientist)
    timeline_append(
        execution=recorded.execution,
        actor=scientist,
        events=[EventInput("narrative_export.created", {"export_id": recorded.pk, "template_snapshot_id": 987})],
    )

    # published after those exports were created: must not be what they get
    template_publish(template=template_create(actor=None, name="v2", template_key="standard-release", stages=STAGES))
    tamper_snapshot(beta.pk, beta.canonical_json.replace('"Review"', '"Skipped"'))
    return {
        "default_v1": default_v1,
        "assay": assay,
        "before_any": before_any,
        "plain": plain,
        "protocol": protocol,
        "drifted": drifted,
        "recorded": recorded,
    }


def run(*args) -> str:
    out = StringIO()
    call_command("migrate_exports", *args, stdout=out)
    return out.getvalue()


def test_dry_run_prints_the_impact_and_changes_nothing(settings, legacy):
    audit_before = AuditEvent.objects.count()

    output = run("--dry-run")

    assert "dry run: nothing is changed" in output
    assert f"export {legacy['plain'].pk} " in output and f"would pin snapshot {legacy['default_v1'].pk}" in output
    assert f"would pin snapshot {legacy['assay'].pk} (assay-release v1, protocol)" in output
    assert f"export {legacy['before_any'].pk} " in output and "no_snapshot_applied" in output
    assert "summary: 5 export(s) without a snapshot; would pin 2; anomalies 3" in output
    assert "ambiguous 1, drifted_snapshot 1, no_snapshot_applied 1" in output
    assert NarrativeExport.objects.filter(template_snapshot__isnull=True).count() == 5
    assert AuditEvent.objects.count() == audit_before
    assert not (settings.PROBLEMS_DIR / "governance_migration.log").exists()


def test_real_run_pins_what_applied_then_audits_and_logs_the_rest(settings, legacy, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        output = run()

    legacy["plain"].refresh_from_db()
    legacy["protocol"].refresh_from_db()
    assert legacy["plain"].template_snapshot_id == legacy["default_v1"].pk  # v1: v2 came later
    assert legacy["protocol"].template_snapshot_id == legacy["assay"].pk
    assert "summary: 5 export(s) without a snapshot; pinned 2; anomalies 3" in output
    audits = AuditEvent.objects.filter(action=EventType.EXPORT_SNAPSHOT_BACKFILLED).order_by("sequence")
    assert [(a.object_id, a.payload["source"]) for a in audits] == [
        (str(legacy["plain"].pk), "default"),
        (str(legacy["protocol"].pk), "protocol"),
    ]

    lines = [json.loads(line) for line in (settings.PROBLEMS_DIR / "governance_migration.log").read_text().splitlines()]
    by_export = {line["export_id"]: line for line in lines}
    assert by_export[legacy["before_any"].pk]["anomaly"] == "no_snapshot_applied"
    assert by_export[legacy["drifted"].pk]["anomaly"] == "drifted_snapshot"
    assert by_export[legacy["recorded"].pk]["anomaly"] == "ambiguous"
    assert by_export[legacy["recorded"].pk]["details"]["recorded_snapshot_id"] == 987
    for pk in by_export:
        assert NarrativeExport.objects.get(pk=pk).template_snapshot_id is None

    with django_capture_on_commit_callbacks(execute=True):
        again = run()
    assert "pinned 0; anomalies 3" in again
    assert AuditEvent.objects.filter(action=EventType.EXPORT_SNAPSHOT_BACKFILLED).count() == 2
    assert len((settings.PROBLEMS_DIR / "governance_migration.log").read_text().splitlines()) == 6


def test_nothing_to_do_and_bad_arguments():
    assert "summary: 0 export(s) without a snapshot; pinned 0; anomalies 0 (none)" in run()
    with pytest.raises(CommandError, match="unrecognized arguments"):
        call_command("migrate_exports", "--bogus")


def test_protocol_history_stays_in_its_team_and_team_less_rows_count_for_every_team(
    team, other_team, scientist, member, django_capture_on_commit_callbacks
):
    from governance.models import GovernanceTemplateAuditLog

    default = publish("standard-release")
    assay = publish("assay-release")
    legacy_ladder = publish("legacy-release")
    outsider = member("scientist", in_team=other_team, username="outsider")
    template_assign(template=assay.template, actor=None, team=other_team, protocol_template_key="assay")
    # A protocol assignment logged before assignments named their team applied in every team.
    GovernanceTemplateAuditLog.objects.create(
        action="assigned",
        template=legacy_ladder.template,
        template_key="legacy-release",
        template_version=1,
        details={"protocol_template_key": "legacy-protocol"},
    )
    alpha_assay = legacy_export(
        execution_create(team=team, title="A", owner=scientist, protocol_template_key="assay"), scientist
    )
    beta_assay = legacy_export(
        execution_create(team=other_team, title="B", owner=outsider, protocol_template_key="assay"), outsider
    )
    alpha_legacy = legacy_export(
        execution_create(team=team, title="L", owner=scientist, protocol_template_key="legacy-protocol"), scientist
    )
    with django_capture_on_commit_callbacks(execute=True):
        run()
    pinned = lambda export: NarrativeExport.objects.get(pk=export.pk).template_snapshot_id  # noqa: E731
    assert pinned(alpha_assay) == default.pk, "beta's protocol assignment never applied in alpha"
    assert pinned(beta_assay) == assay.pk
    assert pinned(alpha_legacy) == legacy_ladder.pk
