import base64
import hashlib
from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone

from exports.models import ExecutionEvent, ExportArtifact, NarrativeExport, PackagingRun, SigningKey
from exports.services.executions import execution_create
from exports.services.packaging import export_package, packaging_enqueue
from governance.models import AuditEvent
from tests.stored import alter_plaintext, flip_stored_byte, stored_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def packaged(make_export, allow_packaging, django_capture_on_commit_callbacks):
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    return NarrativeExport.objects.get(pk=export.pk)


def url(export, suffix="artifact"):
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/{suffix}"


def events_of(export, event_type):
    return ExecutionEvent.objects.filter(
        execution_id=export.execution_id, event_type=event_type, payload__export_id=export.pk
    )


def test_download_streams_the_verified_archive_with_digest_headers(client_for, scientist, packaged):
    artifact = ExportArtifact.objects.get(export=packaged)
    response = client_for(scientist).get(url(packaged))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == artifact.sha256 and len(body) == artifact.size
    assert response["ETag"] == f'"{artifact.sha256}"'
    assert response["Content-Length"] == str(artifact.size)  # the plaintext's, though storage holds ciphertext
    assert response["Digest"] == "sha-256=" + base64.b64encode(bytes.fromhex(artifact.sha256)).decode()
    assert response["Content-Type"] == "application/zstd"
    assert f"dossier-{packaged.pk}-v1.tar.zst" in response["Content-Disposition"]
    assert events_of(packaged, "narrative_export.artifact.downloaded").count() == 1


def test_an_altered_artifact_is_a_409_before_any_byte(client_for, scientist, packaged):
    artifact = ExportArtifact.objects.get(export=packaged)
    alter_plaintext(artifact.storage_path, artifact.size // 2)  # re-encrypted by someone holding the keyring
    response = client_for(scientist).get(url(packaged))
    assert response.status_code == 409
    assert not getattr(response, "streaming", False)
    assert response.json()["error"]["code"] == "artifact_integrity_failed"
    assert events_of(packaged, "narrative_export.artifact.integrity_failed").count() == 1
    assert events_of(packaged, "narrative_export.artifact.downloaded").count() == 0
    assert ExportArtifact.objects.get(pk=artifact.pk).integrity_failed_at is not None


@pytest.mark.parametrize("where", ["header", "middle", "last"])
def test_a_ciphertext_that_does_not_open_is_a_409_before_any_byte_and_audited(client_for, scientist, packaged, where):
    artifact = ExportArtifact.objects.get(export=packaged)
    stored = stored_bytes(artifact.storage_path)
    assert hashlib.sha256(stored).hexdigest() != artifact.sha256  # the stored bytes are not the archive
    flip_stored_byte(artifact.storage_path, {"header": 40, "middle": len(stored) // 2, "last": len(stored) - 1}[where])
    response = client_for(scientist).get(url(packaged))
    assert response.status_code == 409
    assert not getattr(response, "streaming", False)
    assert response.json()["error"]["code"] == "decryption_failed"
    assert events_of(packaged, "narrative_export.artifact.decryption_failed").count() == 1
    assert AuditEvent.objects.filter(action="narrative_export.artifact.decryption_failed").count() == 1
    assert events_of(packaged, "narrative_export.artifact.downloaded").count() == 0


def test_an_artifact_is_gone_once_retention_purged_it_not_before(client_for, scientist, packaged):
    ExportArtifact.objects.filter(export=packaged).update(retain_until=timezone.now() - timedelta(seconds=1))
    client = client_for(scientist)
    assert client.get(url(packaged)).status_code == 200, "a download never expires anything by itself"
    assert NarrativeExport.objects.get(pk=packaged.pk).status == "packaged"
    call_command("enforce_retention")
    for _ in range(2):
        response = client.get(url(packaged))
        assert response.status_code == 410 and response.json()["error"]["code"] == "artifact_expired"
    assert events_of(packaged, "narrative_export.retention.purged").count() == 1
    assert NarrativeExport.objects.get(pk=packaged.pk).status == "expired"
    assert client.get(url(packaged, "artifact/link")).status_code == 410


def test_missing_artifacts_are_404(client_for, scientist, packaged, make_export):
    client = client_for(scientist)
    unpackaged = make_export()
    assert client.get(url(unpackaged)).json()["error"]["code"] == "artifact_not_found"
    storages["artifacts"].delete(ExportArtifact.objects.get(export=packaged).storage_path)
    response = client.get(url(packaged))
    assert response.status_code == 404 and response.json()["error"]["code"] == "artifact_not_found"


def test_other_teams_and_anonymous_users_cannot_download(api_client, client_for, packaged, member, other_team):
    assert api_client.get(url(packaged)).status_code == 401
    outsider = member("scientist", username="outsider", in_team=other_team)
    assert client_for(outsider).get(url(packaged)).status_code == 404
    assert client_for(outsider).get(url(packaged, "artifact/link")).status_code == 404


def test_signed_link_downloads_without_a_session_until_it_expires(
    client_for, scientist, packaged, api_client, settings
):
    body = client_for(scientist).get(url(packaged, "artifact/link")).json()
    assert set(body) == {"url", "expires_at"}
    api_client.force_authenticate(None)
    response = api_client.get(body["url"])
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == ExportArtifact.objects.get().sha256
    assert events_of(packaged, "narrative_export.artifact.downloaded").get().actor == scientist
    settings.DOSSIER_DOWNLOAD_LINK_TTL_SECONDS = -1
    assert api_client.get(body["url"]).json()["error"]["code"] == "download_link_expired"


def test_tampered_or_revoked_links_are_refused(client_for, scientist, packaged, api_client):
    from governance.models import Membership

    link = client_for(scientist).get(url(packaged, "artifact/link")).json()["url"]
    api_client.force_authenticate(None)
    assert api_client.get(link[:-3] + "xyz").json()["error"]["code"] == "download_link_invalid"
    Membership.objects.filter(user=scientist).delete()
    assert api_client.get(link).status_code == 404


def test_jobs_telemetry_counts_the_viewers_exports(client_for, scientist, packaged, make_export, member, other_team):
    make_export()
    body = client_for(scientist).get("/api/experiment-console/exports/narrative/jobs").json()
    assert body["counts"]["packaged"] == 1 and body["counts"]["awaiting_approval"] == 1
    assert body["counts"]["queued"] == 0 and body["oldest_queued_at"] is None
    run = body["recent_runs"][0]
    assert run["export_id"] == packaged.pk and run["status"] == "succeeded" and run["bytes"] > 0
    outsider = member("scientist", username="outsider", in_team=other_team)
    other = client_for(outsider).get("/api/experiment-console/exports/narrative/jobs").json()
    assert sum(other["counts"].values()) == 0 and other["recent_runs"] == []


def test_jobs_telemetry_needs_authentication(api_client):
    assert api_client.get("/api/experiment-console/exports/narrative/jobs").status_code == 401


def test_jobs_telemetry_reports_the_oldest_queued_export(client_for, scientist, make_export, monkeypatch):
    from exports.tasks import package_execution_narrative_export

    monkeypatch.setattr(package_execution_narrative_export, "delay", lambda export_id: None)
    export = make_export()
    packaging_enqueue(export=export)
    NarrativeExport.objects.filter(pk=export.pk).update(queued_at=timezone.now() - timedelta(minutes=10))
    body = client_for(scientist).get("/api/experiment-console/exports/narrative/jobs").json()
    assert body["counts"]["queued"] == 1 and body["oldest_queued_age_seconds"] >= 600


def test_signing_keys_are_public_and_keep_retired_keys(api_client, packaged):
    first = SigningKey.objects.get()
    call_command("rotate_signing_key")
    body = api_client.get("/api/exports/signing-keys").json()
    assert [key["key_id"] for key in body["keys"]] == [first.key_id, SigningKey.objects.get(status="active").key_id]
    assert [key["status"] for key in body["keys"]] == ["retired", "active"]
    assert body["keys"][0]["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert set(body["keys"][0]) >= {"key_id", "algorithm", "public_key_pem", "status", "created_at"}
    assert "private" not in str(body)


def test_a_rotated_key_signs_new_bundles_and_old_ones_still_verify(
    packaged, make_export, django_capture_on_commit_callbacks
):
    call_command("rotate_signing_key")
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    old, new = ExportArtifact.objects.order_by("id")
    assert old.signing_key != new.signing_key and new.signing_key.status == "active"
    for artifact in (old, new):
        call_command("verify_export", str(artifact.export_id))


def test_the_stuck_export_sweeper_is_scheduled(settings):
    assert settings.DOSSIER_SCHEDULES["exports-sweep-stuck"]["task"] == "exports.sweep_stuck_exports"


def test_export_of_an_unrelated_team_execution_is_not_listed(client_for, member, other_team, packaged):
    outsider = member("scientist", username="outsider", in_team=other_team)
    own = execution_create(team=other_team, title="Theirs", owner=outsider)
    body = client_for(outsider).get(f"/api/experiment-console/sessions/{own.pk}/exports/narrative").json()
    assert body["count"] == 0
    assert PackagingRun.objects.count() == 1
    assert export_package(export_id=packaged.pk) == "already_packaged"
