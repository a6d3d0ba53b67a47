"""manage.py export_team_data (docs/team-data.md): a signed BagIt bundle of the team's whole record that the
auditors' validators accept, whose counts equal the database's, and that holds nothing of another team."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from approvals.models import ApprovalHistory, ApprovalLadder, ApprovalSignature, ApprovalStage
from exports.models import Evidence, Execution, ExecutionEvent, ExportArtifact, NarrativeExport
from exports.selectors.narrative_exports import signing_keys_list
from governance.models import AuditEvent
from governance.services.audit import audit_row_hash
from tests.approvals.factories import crew_for, published_snapshot
from tests.exports.team_records import FILE_CONTENT, team_record_create, validate_like_an_auditor

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
    """Another team's record beside ``record``: nothing of it may reach the first team's bundle or erasure."""
    return team_record_create(other_team, crew_for_other(other_team), executions=1)


def crew_for_other(team):
    from tests.approvals.factories import Crew
    from tests.factories import member_of

    roles = ("scientist", "reviewer", "reviewer", "qa_approver", "compliance", "operator", "admin", "auditor")
    names = ("author", "rev", "rev2", "qa", "comp", "ops", "adm", "aud")
    return Crew(*(member_of(team, role, username=f"b-{name}") for role, name in zip(roles, names, strict=True)))


def export_command(*args: str) -> int:
    try:
        call_command("export_team_data", *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def lines(bag: Path, kind: str) -> list[dict]:
    return [json.loads(line) for line in (bag / "data" / f"{kind}.ndjson").read_text().splitlines()]


def test_bundle_passes_the_validators_and_counts_equal_the_database(team, crew, record, other_record, tmp_path):
    archive = tmp_path / "team.tar.zst"
    assert export_command("alpha", "--output", str(archive), "--actor", crew.auditor.username) == 0

    (key,) = signing_keys_list()
    bag = validate_like_an_auditor(archive, key.public_key_pem, tmp_path)
    manifest = json.loads((bag / "data" / "manifest.json").read_text())
    counts = manifest["counts"]
    in_team = {"execution__team": team}
    assert counts["executions"] == Execution.objects.filter(team=team).count() == 2
    assert counts["events"] == ExecutionEvent.objects.filter(**in_team).count()
    assert counts["evidence"] == Evidence.objects.filter(**in_team).count() == 4
    assert counts["exports"] == NarrativeExport.objects.filter(**in_team).count() == 2
    assert counts["artifacts"] == ExportArtifact.objects.filter(export__execution__team=team).count() == 1
    ladder_scope = {"ladder__export__execution__team": team}
    assert counts["ladders"] == ApprovalLadder.objects.filter(export__execution__team=team).count() == 2
    assert counts["stages"] == ApprovalStage.objects.filter(**ladder_scope).count() == 6
    assert counts["signatures"] == ApprovalSignature.objects.filter(**ladder_scope).count() == 3
    assert counts["approval_history"] == ApprovalHistory.objects.filter(**ladder_scope).count() > 0
    # The audit rows as of the snapshot: everything but the row recording this very export.
    assert counts["audit_events"] == AuditEvent.objects.filter(team=team).count() - 1
    assert counts["evidence_files"] == 2 and counts["bundles"] == 1
    for kind, count in counts.items():
        if kind not in ("evidence_files", "bundles"):
            assert len(lines(bag, kind)) == count, kind

    # Nothing of the other team.
    assert {row["team_id"] for row in lines(bag, "executions")} == {team.pk}
    assert {row["team_id"] for row in lines(bag, "audit_events")} == {team.pk}
    assert {row["username"] for row in lines(bag, "members")} >= {crew.admin.username, crew.auditor.username}
    assert {"step": "thaw"} in [row["payload"] for row in lines(bag, "events")]
    # Stored files are the plaintext, as recorded: uploads and the packaged dossier.
    uploads = sorted((bag / "data" / "evidence").rglob("*.csv"))
    assert [path.read_bytes() for path in uploads] == [FILE_CONTENT, FILE_CONTENT]
    artifact = ExportArtifact.objects.get(export=record.packaged)
    (bundle,) = (bag / "data" / "bundles").rglob("*.tar.zst")
    import hashlib

    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == artifact.sha256
    # Audit rows keep their chain fields: each row's hash recomputes.
    for row in lines(bag, "audit_events"):
        from datetime import datetime

        fields = {**row, "created_at": datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))}
        assert audit_row_hash(**fields) == row["hash"]
    export_json = json.loads((bag / "export.json").read_text())
    assert export_json["export"]["kind"] == "team_data" and export_json["export"]["counts"] == counts
    exported = AuditEvent.objects.filter(team=team, action="governance.team_data.exported").get()
    assert exported.actor_username == crew.auditor.username and exported.payload["counts"] == counts


def test_verify_export_accepts_the_team_bundle(crew, record, tmp_path, capsys):
    archive = tmp_path / "team.tar.zst"
    assert export_command("alpha", "--output", str(archive), "--actor", crew.admin.username) == 0
    capsys.readouterr()
    call_command("verify_export", str(archive))
    assert capsys.readouterr().out.startswith("valid: ")


@pytest.mark.parametrize("who", ["author", "operator", "other-team compliance", "nobody"])
def test_export_is_refused_with_exit_2(crew, other_team, tmp_path, who):
    crew_for_other(other_team)
    username = {"author": crew.author.username, "operator": crew.operator.username}.get(who)
    username = username or ("b-comp" if who.startswith("other") else "no-such-user")
    archive = tmp_path / "team.tar.zst"
    assert export_command("alpha", "--output", str(archive), "--actor", username) == 2
    assert not archive.exists()
    assert not AuditEvent.objects.filter(action="governance.team_data.exported").exists()


def test_unknown_team_is_exit_2(crew, tmp_path):
    assert export_command("nope", "--output", str(tmp_path / "x"), "--actor", crew.admin.username) == 2


def test_a_missing_stored_file_fails_with_exit_1_and_leaves_no_file(crew, record, tmp_path, settings):
    from exports.storage import artifact_storage

    blob = Evidence.objects.filter(execution__team__slug="alpha", kind="file").first()
    artifact_storage().delete(blob.storage_path)
    archive = tmp_path / "team.tar.zst"
    assert export_command("alpha", "--output", str(archive), "--actor", crew.admin.username) == 1
    assert not archive.exists() and not Path(f"{archive}.partial").exists()


def test_a_stored_file_that_changed_fails_with_exit_1(crew, record, tmp_path, capsys):
    from tests.stored import alter_plaintext

    blob = Evidence.objects.filter(execution__team__slug="alpha", kind="file").first()
    alter_plaintext(blob.storage_path, offset=3)
    archive = tmp_path / "team.tar.zst"
    assert export_command("alpha", "--output", str(archive), "--actor", crew.admin.username) == 1
    assert "payload_digest_mismatch" in capsys.readouterr().err
    assert not archive.exists()
