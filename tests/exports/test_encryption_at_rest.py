"""Encryption at rest through the product (docs/encryption.md): rotation and re-wrap, a lost key, objects stored
before encryption, the backup/restore drill, and the same on S3 (moto_server) with keys in AWS KMS."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import uuid

import pytest
from django.core.management import call_command

from exports.crypto import DecryptionFailed, keyring_document_read, keyring_load
from exports.encryption import keyring_file
from exports.models import Evidence, ExportArtifact, NarrativeExport
from exports.services.encryption import stored_objects
from exports.services.packaging import export_replay, packaging_enqueue
from exports.storage import artifact_open_verified, storage_open_stream
from governance.models import AuditEvent
from tests.stored import plaintext_bytes, stored_bytes

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
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


def key_ids_in_headers() -> set[str]:
    from exports.crypto import read_header
    from exports.storage import storage_open_raw

    ids = set()
    for obj in stored_objects():
        handle = storage_open_raw(obj.name)
        try:
            ids.add(read_header(handle).key_id)
        finally:
            handle.close()
    return ids


def stored_digests_are_current() -> None:
    """Every object's ``stored_sha256`` is the digest of its bytes as stored (docs/storage-tiers-and-fixity.md)."""
    for model in (ExportArtifact, Evidence):
        for row in model.objects.exclude(storage_path=""):
            assert row.stored_sha256 == hashlib.sha256(stored_bytes(row.storage_path)).hexdigest()


def body_after_header(blob: bytes) -> bytes:
    from exports.crypto import read_header

    return blob[len(read_header(io.BytesIO(blob)).to_bytes()) :]


def everything_opens() -> None:
    for obj in stored_objects():
        with storage_open_stream(obj.name) as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == obj.sha256


def test_rotation_then_rewrap_leaves_only_the_new_key_needed(packaged, tmp_path):
    artifact = ExportArtifact.objects.get(export=packaged)
    before = {obj.name: stored_bytes(obj.name) for obj in stored_objects()}
    assert len(before) == 2 and key_ids_in_headers() == {"k1"}

    code, out, _ = run("rotate_encryption_key")
    assert code == 0 and "k2" in out
    document = keyring_document_read(keyring_file())
    assert document["active"] == "k2" and sorted(document["keys"]) == ["k1", "k2"]
    everything_opens()  # old objects still open under the rotated keyring

    assert run("rewrap_data_keys", "--dry-run")[0] == 0
    assert key_ids_in_headers() == {"k1"}
    code, out, _ = run("rewrap_data_keys")
    assert code == 0 and "re-wrapped 2" in out, out
    assert key_ids_in_headers() == {"k2"}
    for name, old in before.items():  # only the header changed: the chunks are the same bytes
        new = stored_bytes(name)
        assert new != old and body_after_header(new) == body_after_header(old)
    stored_digests_are_current()
    assert run("verify_artifacts")[0] == 0  # the rewrite recorded the new stored digests
    code, out, _ = run("rewrap_data_keys")  # resumable: nothing left to do
    assert code == 0 and "already under the active key 2" in out

    only_new = json.dumps({"active": "k2", "keys": {"k2": document["keys"]["k2"]}})
    code, out, _ = run("verify_keyring", "--keyring", only_new)
    assert code == 0 and "open 2" in out, out
    only_old = json.dumps({"active": "k1", "keys": {"k1": document["keys"]["k1"]}})
    assert run("verify_keyring", "--keyring", only_old)[0] == 3
    with artifact_open_verified(artifact.storage_path, sha256=artifact.sha256) as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == artifact.sha256
    assert export_replay(export=packaged, record=False).identical
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"encryption.key_rotated", "encryption.data_keys_rewrapped"} <= actions


def test_with_the_old_key_removed_before_the_rewrap_nothing_opens(packaged, client_for, scientist):
    assert run("rotate_encryption_key")[0] == 0
    path = keyring_file()
    document = keyring_document_read(path)
    del document["keys"]["k1"]
    with open(path, "w") as handle:
        json.dump(document, handle)

    code, out, err = run("rewrap_data_keys")
    assert code == 3 and "do not open" in err and out.count("no key 'k1'") == 2, out + err
    artifact = ExportArtifact.objects.get(export=packaged)
    with pytest.raises(DecryptionFailed):
        storage_open_stream(artifact.storage_path)
    url = f"/api/experiment-console/sessions/{packaged.execution_id}/exports/narrative/{packaged.pk}/artifact"
    response = client_for(scientist).get(url)
    assert response.status_code == 409 and response.json()["error"]["code"] == "decryption_failed"
    assert run("verify_keyring")[0] == 3


def test_objects_stored_before_encryption_are_encrypted_keeping_their_digests(
    evidence_set, make_export, allow_packaging, django_capture_on_commit_callbacks, settings, tmp_path
):
    plain = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "a")}}
    evidence_file = Evidence.objects.get(kind="file")  # stored (encrypted) by the fixtures: store it in plaintext
    content = plaintext_bytes(evidence_file.storage_path)
    settings.STORAGES = {**settings.STORAGES, "artifacts": plain, "default": plain}
    (tmp_path / "a" / evidence_file.storage_path).parent.mkdir(parents=True)
    (tmp_path / "a" / evidence_file.storage_path).write_bytes(content)
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    artifact = ExportArtifact.objects.get(export=export)
    assert hashlib.sha256(stored_bytes(artifact.storage_path)).hexdigest() == artifact.sha256  # plaintext

    encrypted = {**plain, "BACKEND": "exports.storage_backends.EncryptedFileSystemStorage"}
    settings.STORAGES = {**settings.STORAGES, "artifacts": encrypted, "default": encrypted}
    code, out, _ = run("verify_keyring")
    assert code == 0 and "not encrypted (see encrypt_existing) 2" in out, out
    with artifact_open_verified(artifact.storage_path, sha256=artifact.sha256):
        pass  # still served while waiting to be encrypted

    code, out, _ = run("encrypt_existing", "--dry-run")
    assert code == 0 and "would encrypt 2" in out
    assert hashlib.sha256(stored_bytes(artifact.storage_path)).hexdigest() == artifact.sha256
    code, out, _ = run("encrypt_existing")
    assert code == 0 and "encrypted 2" in out
    for obj in stored_objects():
        assert b"A1,0.41" not in stored_bytes(obj.name)
        assert hashlib.sha256(plaintext_bytes(obj.name)).hexdigest() == obj.sha256
    stored_digests_are_current()
    assert run("encrypt_existing")[1].endswith("already encrypted 2\n")  # resumable
    assert export_replay(export=NarrativeExport.objects.get(pk=export.pk), record=False).identical
    assert run("verify_keyring")[1].endswith("open 2\n")
    assert AuditEvent.objects.filter(action="encryption.existing_objects_encrypted").count() == 2


def test_encrypt_existing_leaves_an_object_whose_digest_changed(make_export, settings, tmp_path, evidence_set):
    plain = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "a")}}
    settings.STORAGES = {**settings.STORAGES, "artifacts": plain, "default": plain}
    evidence = Evidence.objects.get(pk=evidence_set["file"].pk)  # stored encrypted by the fixture's storage
    shutil.copytree(tmp_path / "artifacts", tmp_path / "a", dirs_exist_ok=True)
    plain_path = tmp_path / "a" / evidence.storage_path
    plain_path.write_bytes(b"not what was uploaded")
    encrypted = {**plain, "BACKEND": "exports.storage_backends.EncryptedFileSystemStorage"}
    settings.STORAGES = {**settings.STORAGES, "artifacts": encrypted, "default": encrypted}
    code, out, _ = run("encrypt_existing")
    assert code == 3 and "hash to" in out
    assert plain_path.read_bytes() == b"not what was uploaded"


def test_the_backup_and_restore_drill(packaged, tmp_path, settings):
    """docs/encryption.md, "Backup and restore drill": the keyring is backed up apart from the storage; after a
    loss, the restored keyring is proved against every object before the service is reopened."""
    backup = tmp_path / "backup"
    backup.mkdir()
    shutil.copy(keyring_file(), backup / "keyring.json")
    shutil.copytree(tmp_path / "artifacts", backup / "artifacts")

    shutil.rmtree(tmp_path / "artifacts")
    (tmp_path / "keyring.json").unlink()
    shutil.copytree(backup / "artifacts", tmp_path / "artifacts")
    settings.DOSSIER_KEYRING = str(backup / "keyring.json")

    code, out, _ = run("verify_keyring")
    assert code == 0 and "open 2" in out
    assert run("verify_export", str(packaged.pk))[0] == 0
    wrong = tmp_path / "wrong.json"
    shutil.copy(backup / "keyring.json", wrong)
    document = keyring_document_read(str(wrong))
    document["keys"]["k1"] = "B" * 43 + "="
    wrong.write_text(json.dumps(document))
    code, out, err = run("verify_keyring", "--keyring", str(wrong))
    assert code == 3 and "2 object(s) do not open" in err


def test_command_errors_exit_1(db, settings, tmp_path):
    settings.DOSSIER_KEYRING = "{not json"
    code, _, err = run("verify_keyring")
    assert code == 1 and "not valid JSON" in err
    settings.DOSSIER_KEYRING = '{"active":"k1","keys":{"k1":"' + "A" * 43 + '="}}'
    code, _, err = run("rotate_encryption_key")
    assert code == 1 and "--keyring-file" in err
    code, _, err = run("verify_keyring", "--keyring", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err


# --- S3 through moto_server, keys in KMS ------------------------------------------------------------------------


@pytest.fixture
def kms_keyring(moto_endpoint, settings, tmp_path, monkeypatch):
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")
    arn = kms.create_key(Description="dossier test")["KeyMetadata"]["Arn"]
    path = tmp_path / "kms-keyring.json"
    document = {
        "provider": "aws-kms",
        "active": "k1",
        "keys": {"k1": arn},
        "region": "us-east-1",
        "endpoint_url": moto_endpoint,
    }
    path.write_text(json.dumps(document))
    settings.DOSSIER_KEYRING = str(path)
    return path


@pytest.fixture
def s3_storage(moto_endpoint, settings):
    import boto3

    bucket = f"dossier-{uuid.uuid4().hex[:8]}"
    client = boto3.client(
        "s3", endpoint_url=moto_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    )  # fmt: skip
    client.create_bucket(Bucket=bucket)
    backend = {
        "BACKEND": "exports.storage_backends.EncryptedS3Storage",
        "OPTIONS": {
            "bucket_name": bucket, "endpoint_url": moto_endpoint, "file_overwrite": False, "default_acl": None,
            "access_key": "testing", "secret_key": "testing", "region_name": "us-east-1",
        },
    }  # fmt: skip
    settings.STORAGES = {**settings.STORAGES, "artifacts": backend, "default": backend}
    return client, bucket


def test_on_s3_with_kms_keys_rotation_and_rewrap_and_tampering(
    kms_keyring, s3_storage, make_export, allow_packaging, django_capture_on_commit_callbacks, client_for, scientist
):
    client, bucket = s3_storage
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    artifact = ExportArtifact.objects.get(export=export)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 2
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert b"A1,0.41" not in body and b"qa@example.org" not in body
    url = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/artifact"
    response = client_for(scientist).get(url)
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == artifact.sha256

    assert run("rotate_encryption_key")[0] == 0
    document = keyring_document_read(str(kms_keyring))
    assert document["active"] == "k2" and document["keys"]["k2"].startswith("arn:aws:kms:")
    code, out, _ = run("rewrap_data_keys")
    assert code == 0 and "re-wrapped 2" in out, out
    only_new = {**document, "keys": {"k2": document["keys"]["k2"]}}
    assert run("verify_keyring", "--keyring", json.dumps(only_new))[0] == 0
    assert run("verify_keyring", "--keyring", json.dumps({**document, "active": "k1", "keys": {
        "k1": document["keys"]["k1"]}}))[0] == 3  # fmt: skip
    assert export_replay(export=NarrativeExport.objects.get(pk=export.pk), record=False).identical

    sealed = bytearray(client.get_object(Bucket=bucket, Key=artifact.storage_path)["Body"].read())
    sealed[-5] ^= 0x01
    client.put_object(Bucket=bucket, Key=artifact.storage_path, Body=bytes(sealed))
    response = client_for(scientist).get(url)
    assert response.status_code == 409 and response.json()["error"]["code"] == "decryption_failed"


def test_the_kms_keyring_wraps_and_refuses_through_kms(kms_keyring):
    keyring = keyring_load(str(kms_keyring))
    key_id, wrapped = keyring.wrap(b"\x01" * 32, b"object-a")
    assert keyring.unwrap(key_id, wrapped, b"object-a") == b"\x01" * 32
    with pytest.raises(DecryptionFailed):
        keyring.unwrap(key_id, wrapped, b"object-b")  # bound to its object through the encryption context
    with pytest.raises(DecryptionFailed):
        keyring.unwrap(key_id, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), b"object-a")
