"""Team erasure against S3 (moto in server mode): every object under the team's prefix goes, other teams' stay,
and a second run finds nothing (docs/team-data.md)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.approvals.factories import crew_for, published_snapshot
from tests.exports.team_records import team_record_create
from tests.exports.test_storage_s3 import _keys, s3_artifacts  # noqa: F401 - the fixture
from tests.exports.test_team_data_export import crew_for_other

pytestmark = [pytest.mark.postgres]


def test_erasure_deletes_the_teams_objects_from_s3(s3_artifacts, team, other_team, tmp_path):  # noqa: F811
    client, bucket = s3_artifacts
    published_snapshot()
    crew = crew_for(team)
    team_record_create(team, crew, executions=1)
    team_record_create(other_team, crew_for_other(other_team), executions=1)
    before = _keys(client, bucket)
    assert len([key for key in before if key.startswith("alpha/")]) == 2  # an upload and a bundle
    call_command("export_team_data", "alpha", "--output", str(tmp_path / "t.tar.zst"), "--actor", crew.auditor.username)

    call_command("erase_team_data", "alpha", "--reason", "Offboarding", "--actor", crew.admin.username)
    after = _keys(client, bucket)
    assert not [key for key in after if key.startswith("alpha/")]
    assert [key for key in after if key.startswith("beta/")] == [key for key in before if key.startswith("beta/")]
    call_command("erase_team_data", "alpha", "--reason", "Offboarding", "--actor", crew.admin.username)
    assert _keys(client, bucket) == after
    call_command("verify_audit_chain")
