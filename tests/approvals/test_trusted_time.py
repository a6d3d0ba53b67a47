"""Trusted time (docs/trusted-time.md): RFC 3161 tokens from the local openssl-backed TSA over signature records,
bundle tag manifests and audit checkpoints, verified offline with `openssl ts -verify`; a TSA that is down
blocks nothing and the tokens arrive after it returns."""

import subprocess

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalSignature
from approvals.services.signature_records import signature_record_bytes
from exports.models import ExportArtifact
from exports.services.packaging import PackagingOutcome, export_package
from governance.choices import TimestampStatus, TimestampSubject
from governance.models import AuditCheckpoint, TrustedTimestamp
from governance.services.timestamps import timestamps_fetch_pending
from tests.approvals.test_services_ladders import sign_all
from tests.exports.bagtools import unpack
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def openssl_verifies(tmp_path, data: bytes, reply: bytes, chain: bytes) -> subprocess.CompletedProcess:
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "reply.tsr").write_bytes(reply)
    (tmp_path / "chain.pem").write_bytes(chain)
    return subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(tmp_path / "data"),
            "-in",
            str(tmp_path / "reply.tsr"),
            "-CAfile",
            str(tmp_path / "chain.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def tokens(subject_type):
    return list(TrustedTimestamp.objects.filter(subject_type=subject_type).order_by("subject_id"))


def signed_and_packaged(export, crew, settings):
    settings.DOSSIER_PACKAGING_GATES = ["approvals.guardrails.packaging_gate"]
    sign_all(export, crew)
    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED
    return ExportArtifact.objects.get(export=export)


def test_signatures_and_the_bundle_get_tokens_that_openssl_verifies_offline(
    export, crew, settings, trusted_time, client_for, tmp_path
):
    artifact = signed_and_packaged(export, crew, settings)
    assert timestamps_fetch_pending().granted == 4  # three signatures and the bundle

    signatures = list(ApprovalSignature.objects.filter(ladder__export=export).order_by("pk"))
    granted = tokens(TimestampSubject.SIGNATURE)
    assert [row.subject_id for row in granted] == [signature.pk for signature in signatures]
    assert all(row.status == TimestampStatus.GRANTED and row.gen_time for row in granted)
    for signature, row in zip(signatures, granted, strict=True):
        assert bytes(row.subject_bytes) == signature_record_bytes(signature)

    client = client_for(crew.auditor)
    chain = client.get(reverse("tsa-certificates"))
    assert chain.status_code == 200 and chain["Content-Type"] == "application/pem-certificate-chain"
    url = reverse("export-artifact-timestamp", kwargs={"execution_id": export.execution_id, "export_id": export.pk})
    reply = client.get(url, HTTP_ACCEPT="application/timestamp-reply")
    assert reply.status_code == 200 and reply["Content-Type"] == "application/timestamp-reply"

    bundle = client.get(
        reverse("export-artifact", kwargs={"execution_id": export.execution_id, "export_id": export.pk})
    )
    archive = tmp_path / f"{artifact.bag_name}.tar.zst"
    archive.write_bytes(b"".join(bundle.streaming_content))
    tag_manifest = (unpack(archive, tmp_path / "bag") / "tagmanifest-sha512.txt").read_bytes()
    done = openssl_verifies(tmp_path, tag_manifest, reply.content, chain.content)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification: OK" in done.stdout

    tampered = openssl_verifies(tmp_path, tag_manifest + b"\n", reply.content, chain.content)
    assert tampered.returncode != 0
    signature_token = granted[0]
    done = openssl_verifies(
        tmp_path, signature_record_bytes(signatures[0]), bytes(signature_token.response), chain.content
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert artifact.pk == tokens(TimestampSubject.BUNDLE)[0].subject_id


def test_a_tsa_that_is_down_blocks_nothing_and_the_tokens_arrive_when_it_returns(
    export, crew, settings, trusted_time, client_for
):
    trusted_time.failing(True)
    artifact = signed_and_packaged(export, crew, settings)
    report = timestamps_fetch_pending()
    assert (report.granted, report.failed) == (0, 4)
    pending = TrustedTimestamp.objects.filter(status=TimestampStatus.PENDING)
    assert pending.count() == 4 and all("503" in row.last_error for row in pending)

    client = client_for(crew.auditor)
    url = reverse("export-artifact-timestamp", kwargs={"execution_id": export.execution_id, "export_id": export.pk})
    answer = client.get(url)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "timestamp_pending"
    browser = Client()
    browser.force_login(crew.auditor)
    page = browser.get(reverse("approvals:export-detail", kwargs={"export_id": export.pk}))
    assert page.status_code == 200
    assert b"pending" in page.content and b'data-testid="bundle-timestamp"' in page.content

    trusted_time.failing(False)
    assert timestamps_fetch_pending().granted == 0  # each row waits out its backoff first
    TrustedTimestamp.objects.update(next_attempt_at=timezone.now())
    assert timestamps_fetch_pending().granted == 4
    assert client.get(url).status_code == 200
    assert TrustedTimestamp.objects.get(subject_type=TimestampSubject.BUNDLE).subject_id == artifact.pk


def test_the_timestamp_of_another_teams_bundle_is_not_found(
    export, crew, settings, trusted_time, client_for, other_team
):
    signed_and_packaged(export, crew, settings)
    timestamps_fetch_pending()
    outsider = member_of(other_team, "auditor", username="outsider")
    url = reverse("export-artifact-timestamp", kwargs={"execution_id": export.execution_id, "export_id": export.pk})
    answer = client_for(outsider).get(url)
    assert answer.status_code == 404 and answer.json()["error"]["code"] != "timestamp_pending"


def test_with_trusted_time_off_nothing_is_requested(export, crew, settings, client_for):
    signed_and_packaged(export, crew, settings)
    assert not TrustedTimestamp.objects.exists()
    url = reverse("export-artifact-timestamp", kwargs={"execution_id": export.execution_id, "export_id": export.pk})
    answer = client_for(crew.auditor).get(url)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "timestamp_not_found"


def test_audit_checkpoints_are_signed_timestamped_and_verified(export, crew, settings, trusted_time, capsys):
    sign_all(export, crew)
    call_command("checkpoint_audit_chain")
    checkpoint = AuditCheckpoint.objects.get()
    assert checkpoint.sequence > 0
    assert timestamps_fetch_pending().granted >= 1
    assert (
        TrustedTimestamp.objects.get(subject_type=TimestampSubject.AUDIT_CHECKPOINT, subject_id=checkpoint.pk).status
        == TimestampStatus.GRANTED
    )

    call_command("verify_audit_chain", "--checkpoints", "--workers", "1")
    assert "checkpoints: 1 checked, 1 with a trusted timestamp, 0 problems" in capsys.readouterr().out

    AuditCheckpoint.objects.filter(pk=checkpoint.pk).update(signature=b"\x00" * 64)
    with pytest.raises(SystemExit) as exit_code:
        call_command("verify_audit_chain", "--checkpoints", "--workers", "1")
    assert exit_code.value.code == 3
    assert "its signature does not verify" in capsys.readouterr().out
