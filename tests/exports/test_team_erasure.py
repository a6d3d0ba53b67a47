"""manage.py erase_team_data (docs/team-data.md): refused under a hold (3), without the role or under a compliance
retention (2); otherwise the team's content goes (no stored file of the team remains) while signatures, history,
holds and the audit trail stay and the chain still verifies; a second run changes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from approvals.models import ApprovalHistory, ApprovalSignature
from exports.models import Evidence, ExecutionEvent, LegalHold, NarrativeExport
from governance.models import AuditEvent
from tests.approvals.factories import crew_for, published_snapshot
from tests.exports.team_records import team_record_create
from tests.exports.test_team_data_export import crew_for_other

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def crew(team):
    return crew_for(team)


@pytest.fixture
def record(team, crew):
    published_snapshot()
    return team_record_create(team, crew)


@pytest.fixture
def other_record(record, other_team):
    return team_record_create(other_team, crew_for_other(other_team), executions=1)


def erase(*args: str) -> int:
    try:
        call_command("erase_team_data", *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def stored_files(slug: str) -> list[Path]:
    root = Path(settings.STORAGES["artifacts"]["OPTIONS"]["location"]) / slug
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def snapshot(team) -> dict:
    """What a second run must leave as it is."""
    return {
        "audit": AuditEvent.objects.count(),
        "events": list(ExecutionEvent.objects.filter(execution__team=team).values_list("pk", "payload")),
        "exports": list(NarrativeExport.objects.filter(execution__team=team).values_list("pk", "status", "updated_at")),
        "evidence": list(Evidence.objects.filter(execution__team=team).values_list("pk", "storage_path", "body")),
    }


def test_erasure_removes_content_keeps_the_legal_record_and_is_idempotent(
    team, other_team, crew, record, other_record, capsys
):
    signatures = list(ApprovalSignature.objects.filter(ladder__export__execution__team=team).values())
    history = list(ApprovalHistory.objects.filter(ladder__export__execution__team=team).values())
    audit_before = list(AuditEvent.objects.values_list("sequence", "hash"))
    assert len(stored_files("alpha")) == 3 and len(stored_files("beta")) == 2

    assert erase("alpha", "--reason", "Contract ended; lab data returned", "--actor", crew.admin.username) == 0
    out = capsys.readouterr().out
    assert "erased the content of team alpha" in out and "signatures: 3" in out

    assert stored_files("alpha") == [] and len(stored_files("beta")) == 2
    assert set(NarrativeExport.objects.filter(execution__team=team).values_list("status", flat=True)) == {"erased"}
    measurements = ExecutionEvent.objects.filter(execution__team=team, event_type="measurement.recorded")
    assert measurements.exists() and not measurements.exclude(payload={}).exists()
    evidence = Evidence.objects.filter(execution__team=team)
    assert not evidence.exclude(body="").exists() and not evidence.exclude(storage_path="").exists()
    assert not NarrativeExport.objects.filter(execution__team=team).exclude(narrative_markdown="").exists()
    # The other team is untouched.
    assert not NarrativeExport.objects.filter(execution__team=other_team, status="erased").exists()
    assert not Evidence.objects.filter(execution__team=other_team, body="").exclude(kind="file").exists()
    # Kept, untouched: signatures, approval history, every earlier audit row.
    assert list(ApprovalSignature.objects.filter(ladder__export__execution__team=team).values()) == signatures
    assert list(ApprovalHistory.objects.filter(ladder__export__execution__team=team).values()) == history
    assert list(AuditEvent.objects.values_list("sequence", "hash")[: len(audit_before)]) == audit_before
    erased = AuditEvent.objects.get(action="governance.team_data.erased")
    assert "Contract" not in str(erased.payload) and erased.payload["reason"]["length"] == 33
    call_command("verify_audit_chain")

    before = snapshot(team)
    assert erase("alpha", "--reason", "again", "--actor", crew.admin.username) == 0
    assert "nothing left to erase" in capsys.readouterr().out
    assert snapshot(team) == before


def test_dry_run_reports_and_changes_nothing(team, crew, record, capsys):
    before = snapshot(team)
    audit = AuditEvent.objects.filter(team=team).count()
    assert erase("alpha", "--reason", "plan", "--actor", crew.admin.username, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would remove:" in out and "  stored_objects: 3" in out and "  exports: 2" in out
    assert "kept under legal obligation:" in out and f"  audit_events: {audit}" in out
    assert len(stored_files("alpha")) == 3
    after = snapshot(team)
    assert after["audit"] == before["audit"] + 1  # the plan itself is audited
    assert {**after, "audit": 0} == {**before, "audit": 0}


@pytest.mark.parametrize("scope", ["team", "export"])
def test_a_legal_hold_blocks_with_exit_3(team, crew, record, scope):
    LegalHold.objects.create(
        team=team, scope=scope, export=record.waiting if scope == "export" else None, reason="Inspection",
        placed_by=crew.compliance,
    )  # fmt: skip
    before = snapshot(team)
    assert erase("alpha", "--reason", "r", "--actor", crew.admin.username) == 3
    assert erase("alpha", "--reason", "r", "--actor", crew.admin.username, "--dry-run") == 3
    assert snapshot(team) == before and len(stored_files("alpha")) == 3


def test_a_released_hold_no_longer_blocks(team, crew, record):
    LegalHold.objects.create(
        team=team, scope="team", reason="Inspection", placed_by=crew.compliance, released_by=crew.compliance,
        released_at=timezone.now(), release_reason="Closed",
    )  # fmt: skip
    assert erase("alpha", "--reason", "r", "--actor", crew.admin.username) == 0


@pytest.mark.parametrize("who", ["compliance", "other-team admin"])
def test_without_the_admin_role_exit_2(team, other_team, crew, record, who):
    crew_for_other(other_team)
    username = crew.compliance.username if who == "compliance" else "b-adm"
    before = snapshot(team)
    assert erase("alpha", "--reason", "r", "--actor", username) == 2
    assert snapshot(team) == before


def test_a_compliance_retention_that_has_not_ended_blocks_with_exit_2(team, crew, record):
    Evidence.objects.filter(execution__team=team, kind="file").update(
        retention_mode="compliance", retain_until=timezone.now() + timedelta(days=30)
    )
    before = snapshot(team)
    assert erase("alpha", "--reason", "r", "--actor", crew.admin.username) == 2
    assert snapshot(team) == before
    Evidence.objects.filter(execution__team=team).update(retain_until=timezone.now() - timedelta(days=1))
    assert erase("alpha", "--reason", "r", "--actor", crew.admin.username) == 0


def test_a_data_export_being_built_blocks_until_it_ends_or_is_lost(team, crew, record, settings):
    from exports.models import TeamDataExport

    building = TeamDataExport.objects.create(team=team, requested_by=crew.auditor, status="running")
    assert erase("alpha", "--reason", "r", "--actor", crew.admin.username) == 1
    assert not NarrativeExport.objects.filter(execution__team=team, status="erased").exists()
    # A request older than the task's time limit was lost with its worker: erased like the rest.
    lost_at = timezone.now() - timedelta(seconds=settings.DOSSIER_PACKAGING_TIME_LIMIT + 60)
    TeamDataExport.objects.filter(pk=building.pk).update(created_at=lost_at)
    assert erase("alpha", "--reason", "r", "--actor", crew.admin.username) == 0
    assert TeamDataExport.objects.get(pk=building.pk).status == "erased"


def test_erasure_also_removes_the_teams_objects_in_colder_tiers(team, crew, record, settings):
    settings.DOSSIER_STORAGE_TIERS = {"warm": 0, "cold": 3650}  # everything is due for warm at once
    call_command("storage_lifecycle")
    tiers = Path(settings.STORAGES["artifacts"]["OPTIONS"]["location"]) / ".tiers" / "warm" / "alpha"
    moved = [path for path in tiers.rglob("*") if path.is_file()]
    assert moved and Evidence.objects.filter(execution__team=team, storage_path__startswith=".tiers/warm/").exists()

    assert erase("alpha", "--reason", "Contract ended", "--actor", crew.admin.username) == 0
    assert [path for path in tiers.rglob("*") if path.is_file()] == [] and stored_files("alpha") == []
