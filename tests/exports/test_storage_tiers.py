"""Storage tiers (docs/storage-tiers-and-fixity.md): ``storage_lifecycle`` moves stored objects hot → warm → cold
on the filesystem (a root per tier) and on S3 (storage classes, moto_server); bytes, digests and downloads stay
the same, and a dry run changes nothing."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone

from analytics.metrics import metrics_text
from exports.events import EventType
from exports.models import Evidence, ExecutionEvent, ExportArtifact, NarrativeExport
from exports.services.packaging import packaging_enqueue
from governance.models import AuditEvent
from tests.exports.test_storage_s3 import s3_artifacts  # noqa: F401 - the S3 fixture
from tests.stored import flip_stored_byte, stored_bytes

pytestmark = pytest.mark.django_db


def run(*args, capture=None):
    out, err = io.StringIO(), io.StringIO()
    try:
        with capture(execute=True):
            call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def tiers(settings):
    settings.DOSSIER_STORAGE_TIERS = {"warm": 0, "cold": 10}
    return settings


@pytest.fixture
def packaged(make_export, allow_packaging, django_capture_on_commit_callbacks):
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    return NarrativeExport.objects.get(pk=export.pk)


def rows(export: NarrativeExport) -> tuple[ExportArtifact, Evidence]:
    return (
        ExportArtifact.objects.get(export=export),
        Evidence.objects.get(execution_id=export.execution_id, kind="file"),
    )


def downloaded(client, export: NarrativeExport) -> bytes:
    url = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/artifact"
    response = client.get(url)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def age(export: NarrativeExport, days: int) -> None:
    then = timezone.now() - timedelta(days=days)
    ExportArtifact.objects.filter(export=export).update(created_at=then)
    Evidence.objects.filter(execution_id=export.execution_id).update(created_at=then)


def test_filesystem_moves_keep_bytes_digests_and_downloads(
    tiers, packaged, django_capture_on_commit_callbacks, client_for, scientist
):
    api = client_for(scientist)
    before = downloaded(api, packaged)
    artifact, evidence = rows(packaged)
    hot_paths = [Path(storages["artifacts"].path(row.storage_path)) for row in (artifact, evidence)]
    stored_before = {row.pk: stored_bytes(row.storage_path) for row in (artifact, evidence)}

    code, out, _ = run("storage_lifecycle", "--dry-run", capture=django_capture_on_commit_callbacks)
    assert code == 0 and "dry run, nothing changed" in out and "would move hot → warm" in out
    assert [(row.storage_path, row.storage_tier) for row in rows(packaged)] == [
        (artifact.storage_path, "hot"),
        (evidence.storage_path, "hot"),
    ]
    assert all(path.exists() for path in hot_paths)

    code, out, _ = run("storage_lifecycle", capture=django_capture_on_commit_callbacks)
    assert code == 0, out
    assert "moved 2" in out
    for row in rows(packaged):
        assert row.storage_tier == "warm" and row.storage_path.startswith(".tiers/warm/")
        assert stored_bytes(row.storage_path) == stored_before[row.pk]
        assert hashlib.sha256(stored_bytes(row.storage_path)).hexdigest() == row.stored_sha256
    assert not any(path.exists() for path in hot_paths)
    assert downloaded(api, packaged) == before
    events = ExecutionEvent.objects.filter(event_type=EventType.STORAGE_TIER_CHANGED)
    assert sorted((event.payload["object"], event.payload["to_tier"]) for event in events) == [
        ("artifact", "warm"),
        ("evidence", "warm"),
    ]
    assert AuditEvent.objects.filter(action=EventType.STORAGE_TIER_CHANGED).count() == 2

    age(packaged, 11)
    code, out, _ = run("storage_lifecycle", capture=django_capture_on_commit_callbacks)
    assert code == 0 and "moved 2" in out
    assert {row.storage_tier for row in rows(packaged)} == {"cold"}
    assert downloaded(api, packaged) == before
    assert f'dossier_storage_bytes{{tier="cold"}} {float(artifact.size)}' in metrics_text().decode()
    assert 'dossier_storage_bytes{tier="hot"} 0.0' in metrics_text().decode()
    assert run("verify_artifacts", "--deep", capture=django_capture_on_commit_callbacks)[0] == 0
    assert run("storage_lifecycle", capture=django_capture_on_commit_callbacks)[1].startswith("0 object(s) due")

    code, out, _ = run("storage_lifecycle", "--summary", capture=django_capture_on_commit_callbacks)
    assert code == 0 and out.startswith("cold: artifact ")


def test_a_tier_root_of_its_own(tiers, packaged, django_capture_on_commit_callbacks, client_for, scientist, tmp_path):
    tiers.DOSSIER_TIER_ROOTS = {"warm": str(tmp_path / "warm-disk")}
    api = client_for(scientist)
    before = downloaded(api, packaged)
    assert run("storage_lifecycle", capture=django_capture_on_commit_callbacks)[0] == 0
    artifact, evidence = rows(packaged)
    for row in (artifact, evidence):
        path = storages["artifacts"].path(row.storage_path)
        assert path.startswith(str(tmp_path / "warm-disk") + os.sep) and os.path.exists(path)
    assert downloaded(api, packaged) == before


def test_a_copy_that_does_not_match_stays_where_it_was(tiers, packaged, django_capture_on_commit_callbacks):
    artifact, _ = rows(packaged)
    flip_stored_byte(artifact.storage_path, 300)
    code, out, _ = run("storage_lifecycle", capture=django_capture_on_commit_callbacks)
    assert code == 1
    assert f"FAILED artifact {artifact.pk}" in out
    moved_artifact, moved_evidence = rows(packaged)
    assert (moved_artifact.storage_path, moved_artifact.storage_tier) == (artifact.storage_path, "hot")
    assert moved_evidence.storage_tier == "warm"
    assert not storages["artifacts"].exists(".tiers/warm/" + artifact.storage_path)


def test_on_s3_tiers_are_storage_classes_of_the_same_key(
    s3_artifacts,  # noqa: F811 - the fixture imported above
    tiers,
    make_export,
    allow_packaging,
    django_capture_on_commit_callbacks,
    client_for,
    scientist,
):
    client, bucket = s3_artifacts
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    api = client_for(scientist)
    before = downloaded(api, export)
    artifact, _ = rows(export)
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"])

    assert run("storage_lifecycle", "--dry-run", capture=django_capture_on_commit_callbacks)[0] == 0
    assert client.head_object(Bucket=bucket, Key=artifact.storage_path).get("StorageClass", "STANDARD") == "STANDARD"

    for days, tier, storage_class in ((0, "warm", "STANDARD_IA"), (11, "cold", "GLACIER_IR")):
        age(export, days)
        code, out, _ = run("storage_lifecycle", capture=django_capture_on_commit_callbacks)
        assert code == 0 and "moved 2" in out, out
        for row in rows(export):
            assert row.storage_tier == tier and row.storage_path in keys
            assert client.head_object(Bucket=bucket, Key=row.storage_path)["StorageClass"] == storage_class
            body = client.get_object(Bucket=bucket, Key=row.storage_path)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == row.stored_sha256
        assert downloaded(api, export) == before
    assert sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]) == keys
    assert run("verify_artifacts", "--deep", capture=django_capture_on_commit_callbacks)[0] == 0


def test_the_daily_task_moves_what_is_due(tiers, packaged, django_capture_on_commit_callbacks):
    from exports.tasks import storage_lifecycle

    assert tiers.DOSSIER_SCHEDULES["storage-lifecycle"]["task"] == storage_lifecycle.name
    with django_capture_on_commit_callbacks(execute=True):
        assert storage_lifecycle.delay().get() == {"due": 2, "moved": 2}
    assert {row.storage_tier for row in rows(packaged)} == {"warm"}


def test_without_a_recorded_digest_nothing_moves(tiers, packaged, django_capture_on_commit_callbacks):
    artifact, _ = rows(packaged)
    ExportArtifact.objects.filter(pk=artifact.pk).update(stored_sha256="")
    code, out, _ = run("storage_lifecycle", capture=django_capture_on_commit_callbacks)
    assert code == 0 and "without stored digest 1" in out and "--record-missing" in out
    assert rows(packaged)[0].storage_path == artifact.storage_path


def test_packaging_reads_evidence_from_a_colder_tier(tiers, packaged, make_export, django_capture_on_commit_callbacks):
    assert run("storage_lifecycle", capture=django_capture_on_commit_callbacks)[0] == 0
    assert rows(packaged)[1].storage_path.startswith(".tiers/warm/")
    later = make_export()  # version 2 selects the same evidence file, now in the warm tier
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=later)
    assert NarrativeExport.objects.get(pk=later.pk).status == "packaged"
    call_command("verify_export", str(later.pk), stdout=io.StringIO())
