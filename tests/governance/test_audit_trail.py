"""The auditors' trail: API (filters, scoping, streamed NDJSON/CSV), the command, and the stand-alone verifier."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from governance.models import AuditEvent
from governance.services.audit import audit_record

pytestmark = pytest.mark.django_db

VERIFIER = Path(__file__).resolve().parents[2] / "docs" / "verify_audit_segment.py"
URL = "/api/governance/audit-events"


@pytest.fixture
def trail(team, other_team, member):
    actor = member("scientist", username="=cmd|calc")  # a username a spreadsheet would run
    for i in range(4):
        audit_record(action="narrative_export.packaging.queued", actor=actor, team_id=team.pk, payload={"i": i})
    audit_record(action="governance.template.published", team_id=team.pk, payload={"note": "@SUM(A1)"})
    audit_record(action="narrative_export.packaging.queued", team_id=other_team.pk, payload={"foreign": True})
    return actor


@pytest.fixture
def auditor(member):
    return member("auditor", username="audrey")


def verify(path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(VERIFIER), str(path), *extra], capture_output=True, text=True, check=False
    )


def test_json_page_is_team_scoped_and_filtered(trail, auditor, client_for, team):
    response = client_for(auditor).get(URL)
    assert response.status_code == 200
    results = response.json()["results"]
    assert {row["team"] for row in results} == {"alpha"} and response.json()["count"] == 5
    assert all(row["created_at"].endswith("Z") and len(row["hash"]) == 64 for row in results)
    filtered = client_for(auditor).get(URL, {"action_prefix": "governance.", "team": "alpha"}).json()
    assert [row["action"] for row in filtered["results"]] == ["governance.template.published"]
    by_actor = client_for(auditor).get(URL, {"actor": "=cmd|calc"}).json()
    assert by_actor["count"] == 4


def test_roles_bad_input_and_foreign_teams(trail, member, client_for, other_team):
    scientist = member("scientist", username="sam")
    assert client_for(scientist).get(URL).json()["error"]["code"] == "permission_denied"
    auditor = member("compliance", username="cora")
    assert client_for(auditor).get(URL, {"team": "beta"}).status_code == 404
    response = client_for(auditor).get(URL, {"since": "yesterday", "format": "xml"})
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]["fields"]) == {"since", "format"}
    member("auditor", username="cora", in_team=other_team)
    assert client_for(auditor).get(URL, {"team": "beta"}).json()["count"] == 1


def test_ndjson_download_verifies_and_an_edited_row_is_rejected(trail, auditor, client_for, tmp_path):
    response = client_for(auditor).get(URL, {"format": "ndjson"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    body = b"".join(response.streaming_content)
    rows = [json.loads(line) for line in body.splitlines()]
    assert len(rows) == 5 and int(response["X-Dossier-Segment-Rows"]) == 5
    assert response["X-Dossier-Segment-Last"] == f"{rows[-1]['sequence']} {rows[-1]['hash']}"
    path = tmp_path / "segment.ndjson"
    path.write_bytes(body)
    accepted = verify(path, "--last-hash", rows[-1]["hash"])
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "5 row(s) verified, 4 link(s) checked" in accepted.stdout
    rows[2]["payload"]["i"] = 99
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rejected = verify(path)
    assert rejected.returncode == 3 and f"sequence {rows[2]['sequence']}" in rejected.stdout


def test_csv_download_neutralizes_formulas_and_still_verifies(trail, auditor, client_for, tmp_path):
    response = client_for(auditor).get(URL, {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 5
    assert table[0]["actor_username"] == "'=cmd|calc"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in table for cell in row.values())
    path = tmp_path / "segment.csv"
    path.write_text(text)
    assert verify(path).returncode == 0
    path.write_text(text.replace("'=cmd|calc", "'=cmd|calX", 1))
    assert verify(path).returncode == 3


def test_command_exports_a_segment_the_verifier_accepts_with_its_first_link(trail, tmp_path, team):
    out = tmp_path / "trail.ndjson"
    stderr = io.StringIO()
    call_command("export_audit_trail", "--team", "alpha", "--after-sequence", "2", "--output", str(out), stderr=stderr)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["sequence"] for row in rows][0] > 2 and {row["team"] for row in rows} == {"alpha"}
    before = AuditEvent.objects.get(sequence=rows[0]["sequence"] - 1)
    assert verify(out, "--first-prev-hash", before.hash).returncode == 0
    assert f"last {rows[-1]['sequence']} {rows[-1]['hash']}" in stderr.getvalue()
    assert verify(out, "--first-prev-hash", "0" * 64).returncode == 3
    csv_out = io.StringIO()
    call_command("export_audit_trail", "--format", "csv", stdout=csv_out, stderr=io.StringIO())
    assert len(list(csv.DictReader(io.StringIO(csv_out.getvalue())))) == AuditEvent.objects.count()
    for bad in (["--team", "nope"], ["--since", "2026-01-01"]):
        with pytest.raises(SystemExit) as exit_info:
            call_command("export_audit_trail", *bad, stderr=io.StringIO())
        assert exit_info.value.code == 1


def test_anonymous_is_refused(api_client):
    assert api_client.get(URL).status_code == 401


def test_the_stand_alone_verifier_reads_the_declared_columns():
    """The verifier is stdlib-only and keeps its own copy of the field list; it must match the one declaration."""
    import importlib.util

    from governance.services.audit import AUDIT_COLUMN_NAMES

    spec = importlib.util.spec_from_file_location("verify_audit_segment", VERIFIER)
    verifier = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verifier)
    assert verifier.FIELDS == AUDIT_COLUMN_NAMES
