"""Fixity checks (docs/storage-tiers-and-fixity.md): the digest of every stored object's bytes is recorded as it is
written, and ``verify_artifacts`` finds a changed byte, on the filesystem and on S3 (moto_server)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from analytics.metrics import metrics_text
from exports.choices import FixityStatus
from exports.events import EventType
from exports.models import Evidence, ExecutionEvent, ExportArtifact, NarrativeExport
from exports.services.packaging import packaging_enqueue
from governance.models import AuditEvent, ScheduledJobRun
from tests.exports.test_storage_s3 import s3_artifacts  # noqa: F401 - the S3 fixture
from tests.stored import alter_plaintext, flip_stored_byte, stored_bytes

pytestmark = pytest.mark.django_db


def run(*args, capture=None):
    out, err = io.StringIO(), io.StringIO()
    try:
        if capture is not None:
            with capture(execute=True):
                call_command(*args, stdout=out, stderr=err)
        else:
            call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def packaged(make_export, allow_packaging, django_capture_on_commit_callbacks):
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    return NarrativeExport.objects.get(pk=export.pk)


def uploaded_file(export: NarrativeExport) -> Evidence:
    return Evidence.objects.get(execution_id=export.execution_id, kind="file")


def metric(name: str) -> float:
    for line in metrics_text().decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def fixity_log() -> list[dict]:
    path = Path(settings.PROBLEMS_DIR) / "fixity.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_digest_of_the_stored_bytes_is_recorded_as_they_are_written(packaged):
    artifact = ExportArtifact.objects.get(export=packaged)
    evidence = uploaded_file(packaged)
    for row in (artifact, evidence):
        stored = stored_bytes(row.storage_path)
        assert row.stored_sha256 == hashlib.sha256(stored).hexdigest()
        assert row.stored_sha256 != row.sha256  # encrypted at rest: the stored bytes are not the plaintext
        assert row.storage_tier == "hot" and row.fixity_status == FixityStatus.UNCHECKED


def test_a_flipped_byte_in_an_artifact_and_in_an_evidence_file_is_found_by_the_next_run(
    packaged, django_capture_on_commit_callbacks, client_for, scientist
):
    artifact = ExportArtifact.objects.get(export=packaged)
    evidence = uploaded_file(packaged)
    code, out, _ = run("verify_artifacts", capture=django_capture_on_commit_callbacks)
    assert code == 0, out
    assert "intact 2" in out
    assert fixity_log() == []
    failures_before = metric("dossier_artifact_integrity_failures_total")

    flip_stored_byte(artifact.storage_path, 200)
    flip_stored_byte(evidence.storage_path, 100)
    code, out, _ = run("verify_artifacts", capture=django_capture_on_commit_callbacks)

    assert code == 3
    assert f"FAILED artifact {artifact.pk}" in out and f"FAILED evidence {evidence.pk}" in out
    lines = fixity_log()
    assert {(line["object"], line["id"], line["outcome"]) for line in lines} == {
        ("artifact", artifact.pk, "stored_digest_mismatch"),
        ("evidence", evidence.pk, "stored_digest_mismatch"),
    }
    for line in lines:
        assert line["expected_stored_sha256"] != line["actual_stored_sha256"]
    assert metric("dossier_artifact_integrity_failures_total") == failures_before + 2
    assert metric('dossier_verify_failures_total{source="fixity"}') == 2
    events = ExecutionEvent.objects.filter(
        execution_id=packaged.execution_id, event_type=EventType.ARTIFACT_INTEGRITY_FAILED
    )
    assert sorted(event.payload["object"] for event in events) == ["artifact", "evidence"]
    artifact.refresh_from_db()
    evidence.refresh_from_db()
    assert artifact.integrity_failed_at is not None and artifact.fixity_status == FixityStatus.FAILED
    assert evidence.fixity_status == FixityStatus.FAILED
    assert ScheduledJobRun.objects.get(job="fixity").outcome == "failed"

    url = f"/api/experiment-console/sessions/{packaged.execution_id}/exports/narrative/{packaged.pk}"
    api = client_for(scientist)
    shown = api.get(url).json()["artifact"]
    assert shown["state"] == "integrity_failed" and shown["fixity_status"] == "failed"
    assert shown["storage_tier"] == "hot" and shown["fixity_checked_at"]
    response = api.get(url + "/artifact")
    assert response.status_code == 409  # nothing of a changed object is served


def test_deep_checks_the_plaintext_through_the_storage_layer(packaged, django_capture_on_commit_callbacks):
    artifact = ExportArtifact.objects.get(export=packaged)
    alter_plaintext(artifact.storage_path, 10)  # re-encrypted by someone holding the keyring
    # ...who also rewrote the stored digest: only the plaintext still tells
    new_stored = hashlib.sha256(stored_bytes(artifact.storage_path)).hexdigest()
    ExportArtifact.objects.filter(pk=artifact.pk).update(stored_sha256=new_stored)

    code, out, _ = run("verify_artifacts", capture=django_capture_on_commit_callbacks)
    assert code == 0, out
    code, out, _ = run("verify_artifacts", "--deep", capture=django_capture_on_commit_callbacks)
    assert code == 3
    (line,) = fixity_log()
    assert line["outcome"] == "plaintext_digest_mismatch" and line["expected_sha256"] == artifact.sha256


def test_objects_stored_before_the_digest_existed_are_checked_by_plaintext_then_recorded(
    packaged, django_capture_on_commit_callbacks
):
    artifact = ExportArtifact.objects.get(export=packaged)
    real = artifact.stored_sha256
    ExportArtifact.objects.filter(pk=artifact.pk).update(stored_sha256="")

    code, out, _ = run("verify_artifacts")
    assert code == 0 and "unrecorded 1" in out and "--record-missing" in out
    assert ExportArtifact.objects.get(pk=artifact.pk).stored_sha256 == ""

    code, out, _ = run("verify_artifacts", "--record-missing")
    assert code == 0 and "recorded 1" in out
    assert ExportArtifact.objects.get(pk=artifact.pk).stored_sha256 == real


def test_sample_checks_the_objects_checked_longest_ago_first(packaged, django_capture_on_commit_callbacks):
    artifact = ExportArtifact.objects.get(export=packaged)
    evidence = uploaded_file(packaged)
    assert run("verify_artifacts", "--sample", "1")[0] == 0
    first = ExportArtifact.objects.get(pk=artifact.pk).fixity_checked_at
    assert first is not None and Evidence.objects.get(pk=evidence.pk).fixity_checked_at is None
    assert run("verify_artifacts", "--sample", "1")[0] == 0
    assert Evidence.objects.get(pk=evidence.pk).fixity_checked_at is not None
    assert ExportArtifact.objects.get(pk=artifact.pk).fixity_checked_at == first
    assert run("verify_artifacts", "--sample", "1")[0] == 0
    assert ExportArtifact.objects.get(pk=artifact.pk).fixity_checked_at > first


def test_a_missing_object_is_a_failure(packaged, django_capture_on_commit_callbacks):
    from django.core.files.storage import storages

    evidence = uploaded_file(packaged)
    storages["artifacts"].delete(evidence.storage_path)
    code, _, _ = run("verify_artifacts", capture=django_capture_on_commit_callbacks)
    assert code == 3
    assert [line["outcome"] for line in fixity_log()] == ["missing"]
    assert AuditEvent.objects.filter(action=EventType.ARTIFACT_INTEGRITY_FAILED).count() == 1


def test_on_s3_a_flipped_byte_is_found(
    s3_artifacts,  # noqa: F811 - the fixture imported above
    make_export,
    allow_packaging,
    django_capture_on_commit_callbacks,
):
    client, bucket = s3_artifacts
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    artifact = ExportArtifact.objects.get(export=export)
    evidence = uploaded_file(export)
    for row in (artifact, evidence):
        body = client.get_object(Bucket=bucket, Key=row.storage_path)["Body"].read()
        assert row.stored_sha256 == hashlib.sha256(body).hexdigest()
    assert run("verify_artifacts", "--deep", capture=django_capture_on_commit_callbacks)[0] == 0

    for row in (artifact, evidence):
        sealed = bytearray(client.get_object(Bucket=bucket, Key=row.storage_path)["Body"].read())
        sealed[len(sealed) // 2] ^= 0x01
        client.put_object(Bucket=bucket, Key=row.storage_path, Body=bytes(sealed))
    code, out, _ = run("verify_artifacts", capture=django_capture_on_commit_callbacks)
    assert code == 3, out
    assert {line["object"] for line in fixity_log()} == {"artifact", "evidence"}
    code, out, _ = run("verify_artifacts", "--deep", capture=django_capture_on_commit_callbacks)
    assert code == 3
    assert {line["outcome"] for line in fixity_log()[2:]} == {"decryption_failed"}


def test_an_object_moved_to_another_tier_during_a_run_is_checked_where_it_now_is(packaged, settings):
    from django.core.files.storage import storages

    from exports.services.fixity import artifacts_fixity_verify
    from exports.services.storage_tiers import tier_move, tier_moves_planned

    settings.DOSSIER_STORAGE_TIERS = {"warm": 0}
    planned = {move.kind: move for move in tier_moves_planned()}
    moved = []

    def move_the_other_one(index, total, result):
        if index == 1:
            move = planned["evidence" if result.target.kind == "artifact" else "artifact"]
            assert tier_move(move) == "moved"
            storages["artifacts"].delete(move.name)  # what the move does once its transaction commits
            moved.append(move)

    report = artifacts_fixity_verify(progress=move_the_other_one)
    assert moved and report.failures == [] and report.counts == {"intact": 2}
    model = ExportArtifact if moved[0].kind == "artifact" else Evidence
    row = model.objects.get(pk=moved[0].pk)
    assert row.storage_tier == "warm" and row.fixity_status == FixityStatus.INTACT


def test_the_daily_task_checks_and_records_its_run(packaged, settings):
    from exports.tasks import verify_artifacts

    assert settings.DOSSIER_SCHEDULES["artifact-fixity"]["task"] == verify_artifacts.name
    settings.DOSSIER_FIXITY_SAMPLE = 1
    assert verify_artifacts.delay().get() == {"checked": 1, "failures": 0, "errors": 0}
    run = ScheduledJobRun.objects.get(job="fixity")
    assert run.outcome == "succeeded" and run.rows == 1


@pytest.mark.parametrize("backend", ["filesystem", "s3"])
def test_without_encryption_at_rest_the_stored_digest_is_the_plaintext_digest(
    backend, request, settings, tmp_path, execution, scientist, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from exports.services.evidence import evidence_file_store

    if backend == "s3":
        request.getfixturevalue("s3_artifacts")
        plain = {**settings.STORAGES["artifacts"], "BACKEND": "storages.backends.s3.S3Storage"}
    else:
        plain = {"BACKEND": "exports.storage_backends.TieredFileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}
    settings.STORAGES = {**settings.STORAGES, "artifacts": plain, "default": plain}
    content = b"well,od600\n" + b"A1,0.41\n" * 1000
    digest = hashlib.sha256(content).hexdigest()
    upload = SimpleUploadedFile("reads.csv", content, content_type="text/csv")
    evidence = evidence_file_store(execution=execution, actor=scientist, upload=upload, sha256=digest)
    assert evidence.stored_sha256 == digest and stored_bytes(evidence.storage_path) == content
    code, out, _ = run("verify_artifacts", "--deep", capture=django_capture_on_commit_callbacks)
    assert code == 0 and "intact 1" in out, out


def test_storage_that_does_not_answer_is_an_error_not_a_failure(packaged, settings):
    from botocore.config import Config

    unreachable = {
        "BACKEND": "exports.storage_backends.EncryptedS3Storage",
        "OPTIONS": {
            "bucket_name": "nowhere",
            "endpoint_url": "http://127.0.0.1:8297",  # nothing listens here
            "access_key": "testing",
            "secret_key": "testing",
            "region_name": "us-east-1",
            "client_config": Config(connect_timeout=1, retries={"max_attempts": 1}),
        },
    }
    settings.STORAGES = {**settings.STORAGES, "artifacts": unreachable, "default": unreachable}
    code, out, _ = run("verify_artifacts")
    assert code == 1 and "unreadable 2" in out, out
    assert fixity_log() == [] and not AuditEvent.objects.filter(action=EventType.ARTIFACT_INTEGRITY_FAILED).exists()
    assert ExportArtifact.objects.get(export=packaged).fixity_status == FixityStatus.UNCHECKED
