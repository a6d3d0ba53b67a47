"""The S3 path of artifact storage, against moto in server mode through boto3 and django-storages."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.core.files.storage import storages
from django.core.management import call_command

from exports.crypto import MAGIC
from exports.models import ExportArtifact, NarrativeExport
from exports.services.packaging import export_replay, packaging_enqueue
from exports.storage import STAGING_PREFIX, artifact_open_verified

pytestmark = pytest.mark.django_db

CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


@pytest.fixture
def s3_artifacts(moto_endpoint, settings):
    import boto3

    bucket = f"dossier-{uuid.uuid4().hex[:8]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    backend = {
        "BACKEND": "exports.storage_backends.EncryptedS3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": moto_endpoint,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            **CREDENTIALS,
        },
    }
    settings.STORAGES = {**settings.STORAGES, "artifacts": backend, "default": backend}
    return client, bucket


def _keys(client, bucket) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_packaging_publishes_to_s3_without_leaving_staged_keys(
    s3_artifacts, make_export, allow_packaging, django_capture_on_commit_callbacks
):
    client, bucket = s3_artifacts
    assert storages["artifacts"].__class__.__name__ == "EncryptedS3Storage"
    export = make_export()  # the evidence file itself was stored in S3 by the fixture
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    export.refresh_from_db()
    assert export.status == "packaged"
    artifact = ExportArtifact.objects.get(export=export)
    keys = _keys(client, bucket)
    assert artifact.storage_path in keys
    assert not [key for key in keys if key.startswith(STAGING_PREFIX)]
    stored = client.get_object(Bucket=bucket, Key=artifact.storage_path)["Body"].read()
    assert stored.startswith(MAGIC) and hashlib.sha256(stored).hexdigest() != artifact.sha256  # encrypted at rest
    with artifact_open_verified(artifact.storage_path, sha256=artifact.sha256) as handle:
        body = handle.read()
    assert hashlib.sha256(body).hexdigest() == artifact.sha256 and len(body) == artifact.size
    call_command("verify_export", str(export.pk))
    assert export_replay(export=NarrativeExport.objects.get(pk=export.pk), record=False).identical


def test_s3_downloads_are_verified_before_streaming(
    s3_artifacts, make_export, allow_packaging, django_capture_on_commit_callbacks, client_for, scientist
):
    client, bucket = s3_artifacts
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    artifact = ExportArtifact.objects.get(export=export)
    url = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/artifact"
    api = client_for(scientist)
    response = api.get(url)
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == artifact.sha256

    sealed = bytearray(client.get_object(Bucket=bucket, Key=artifact.storage_path)["Body"].read())
    sealed[len(sealed) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=artifact.storage_path, Body=bytes(sealed))
    response = api.get(url)
    assert response.status_code == 409 and response.json()["error"]["code"] == "decryption_failed"

    client.put_object(Bucket=bucket, Key=artifact.storage_path, Body=b"replaced by someone")
    response = api.get(url)
    assert response.status_code == 409 and response.json()["error"]["code"] == "artifact_integrity_failed"

    client.delete_object(Bucket=bucket, Key=artifact.storage_path)
    response = api.get(url)
    assert response.status_code == 404 and response.json()["error"]["code"] == "artifact_not_found"


def test_retention_purges_from_s3_only_after_the_hold_is_released(
    s3_artifacts, make_export, allow_packaging, django_capture_on_commit_callbacks, member, team
):
    from datetime import timedelta

    from django.utils import timezone

    from exports.models import Evidence, RetentionTombstone
    from exports.services.holds import legal_hold_place, legal_hold_release
    from exports.services.retention import retention_enforce

    client, bucket = s3_artifacts
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    artifact = ExportArtifact.objects.get(export=export)
    files = list(Evidence.objects.filter(execution_id=export.execution_id, kind="file"))
    stored = {artifact.storage_path, *(e.storage_path for e in files)}
    assert stored <= set(_keys(client, bucket))
    past = timezone.now() - timedelta(days=1)
    ExportArtifact.objects.filter(pk=artifact.pk).update(retain_until=past)
    Evidence.objects.filter(pk__in=[e.pk for e in files]).update(retain_until=past)
    officer = member("compliance", username="s3-officer")
    hold = legal_hold_place(actor=officer, team=team, scope="team", reason="Inspection")

    held = retention_enforce()
    assert held.purged == 0 and held.categories["artifact"].held == 1
    assert stored <= set(_keys(client, bucket))

    legal_hold_release(actor=officer, hold_id=hold.pk, reason="Closed")
    run = retention_enforce()
    assert run.categories["artifact"].purged == 1 and run.categories["evidence"].purged == len(files)
    assert not stored & set(_keys(client, bucket)), "no purged byte remains in the bucket"
    assert RetentionTombstone.objects.count() == 1 + len(files)
