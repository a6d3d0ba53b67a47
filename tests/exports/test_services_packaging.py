import hashlib
from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.utils import timezone

from config.errors import Conflict
from exports import narratives as n
from exports.bundle import verify_bundle
from exports.choices import ExportStatus, PackagingRunStatus
from exports.hooks import ApprovalRecord
from exports.models import Evidence, ExecutionEvent, ExportArtifact, NarrativeExport, PackagingRun, SigningKey
from exports.services import packaging
from exports.services.packaging import (
    PackagingOutcome,
    export_package,
    export_replay,
    exports_sweep_stuck,
    packaging_enqueue,
)
from exports.storage import STAGING_PREFIX, StorageUnavailable
from tests.stored import alter_plaintext, flip_stored_byte, plaintext_path, stored_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Export ids handed to the packaging task (instead of running it)."""
    from exports.tasks import package_execution_narrative_export

    calls: list[int] = []
    monkeypatch.setattr(package_execution_narrative_export, "delay", calls.append)
    return calls


@pytest.fixture
def queued(make_export, sent, django_capture_on_commit_callbacks):
    """An export queued for packaging, without running the task."""

    def make(**kwargs):
        export = make_export(**kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            packaging_enqueue(export=export)
        assert sent[-1] == export.pk
        export.refresh_from_db()
        return export

    return make


def lifecycle(export) -> list[str]:
    rows = ExecutionEvent.objects.filter(execution_id=export.execution_id, payload__export_id=export.pk)
    return list(rows.order_by("sequence").values_list("event_type", flat=True))


def test_enqueue_sets_queued_records_the_event_and_sends_on_commit(
    make_export, sent, django_capture_on_commit_callbacks
):
    export = make_export()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        packaging_enqueue(export=export)
        packaging_enqueue(export=export)  # already queued: sent again, no second event
        assert sent == []
    for callback in callbacks:
        callback()
    assert sent == [export.pk, export.pk]
    export.refresh_from_db()
    assert export.status == ExportStatus.QUEUED and export.queued_at is not None
    assert export.packaging_queue_state["status"] == "queued"
    assert lifecycle(export).count("narrative_export.packaging.queued") == 1


def test_with_an_allowing_gate_the_worker_packages_and_publishes(queued, allow_packaging, tmp_path):
    export = queued()
    assert export_package(export_id=export.pk, task_id="t-1") == PackagingOutcome.PACKAGED
    export.refresh_from_db()
    artifact = ExportArtifact.objects.get(export=export)
    run = PackagingRun.objects.get(export=export)
    assert export.status == ExportStatus.PACKAGED and export.packaged_at is not None
    assert run.status == PackagingRunStatus.SUCCEEDED and run.attempt == 1 and run.bytes == artifact.size
    assert run.duration_ms is not None and run.gates == [{"gate": "tests.allow", "allowed": True, "reason": ""}]
    assert artifact.storage_path == f"alpha/{export.execution_id}/{export.pk}/v1/dossier-{export.pk}-v1.tar.zst"
    assert artifact.retain_until == export.retain_until
    storage = storages["artifacts"]
    with storage.open(artifact.storage_path, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == artifact.sha256
    assert hashlib.sha256(stored_bytes(artifact.storage_path)).hexdigest() != artifact.sha256  # encrypted at rest
    keys = {key.key_id: key.public_key_pem for key in SigningKey.objects.all()}
    report = verify_bundle(plaintext_path(artifact.storage_path, tmp_path), keys)
    assert report.ok, report.problems
    assert report.bag_name == f"dossier-{export.pk}-v1"
    assert lifecycle(export)[-3:] == [
        "narrative_export.packaging.queued",
        "narrative_export.packaging.started",
        "narrative_export.packaging.completed",
    ]
    assert storage.listdir(STAGING_PREFIX.rstrip("/"))[1] == []


def test_packaging_twice_is_idempotent(queued, allow_packaging):
    export = queued()
    export_package(export_id=export.pk)
    assert export_package(export_id=export.pk) == PackagingOutcome.ALREADY_PACKAGED
    assert ExportArtifact.objects.filter(export=export).count() == 1
    assert PackagingRun.objects.filter(export=export).count() == 1


def test_no_gate_configured_leaves_the_export_blocked(queued, settings):
    settings.DOSSIER_PACKAGING_GATES = []
    export = queued()
    assert export_package(export_id=export.pk) == PackagingOutcome.BLOCKED
    export.refresh_from_db()
    run = PackagingRun.objects.get(export=export)
    assert run.status == PackagingRunStatus.BLOCKED and run.error_code == "no_packaging_gate"
    assert export.status == ExportStatus.AWAITING_APPROVAL
    assert export.packaging_queue_state["status"] == "blocked"
    assert not ExportArtifact.objects.exists()
    assert "narrative_export.packaging.started" not in lifecycle(export)


@pytest.mark.parametrize("gate", ["tests.exports.gates.refuse", "tests.exports.gates.explode"])
def test_any_refusing_or_broken_gate_blocks(queued, settings, gate):
    settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow", gate]
    export = queued()
    assert export_package(export_id=export.pk) == PackagingOutcome.BLOCKED
    run = PackagingRun.objects.get(export=export)
    assert run.error_code == "gate_blocked"
    assert [row["allowed"] for row in run.gates] == [True, False]
    assert not ExportArtifact.objects.exists()


def test_a_gate_that_closes_during_the_build_stops_the_publish(queued, settings, monkeypatch):
    settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow"]
    export = queued()
    real_build = packaging._build_staged

    def build_then_close_gate(export, **kwargs):
        result = real_build(export, **kwargs)
        settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.refuse"]
        return result

    monkeypatch.setattr(packaging, "_build_staged", build_then_close_gate)
    assert export_package(export_id=export.pk) == PackagingOutcome.BLOCKED
    assert not ExportArtifact.objects.exists()
    assert storages["artifacts"].listdir(STAGING_PREFIX.rstrip("/"))[1] == []


def test_an_export_that_is_not_queued_is_left_alone(make_export, allow_packaging):
    export = make_export()
    assert export_package(export_id=export.pk) == PackagingOutcome.NOT_QUEUED
    assert export_package(export_id=10**9) == PackagingOutcome.MISSING
    assert not PackagingRun.objects.exists()


def test_packaged_exports_cannot_be_queued_again(queued, allow_packaging):
    export = queued()
    export_package(export_id=export.pk)
    with pytest.raises(Conflict) as caught:
        packaging_enqueue(export=export)
    assert caught.value.code == "export_not_queueable"


def test_transient_storage_errors_are_retried_then_fail(queued, allow_packaging, monkeypatch):
    export = queued()

    def unavailable(staged, final_name):
        raise StorageUnavailable("bucket unreachable")

    monkeypatch.setattr(packaging, "artifact_publish", unavailable)
    with pytest.raises(StorageUnavailable):
        export_package(export_id=export.pk, final_attempt=False)
    export.refresh_from_db()
    assert export.status == ExportStatus.QUEUED
    with pytest.raises(StorageUnavailable):
        export_package(export_id=export.pk, final_attempt=True)
    export.refresh_from_db()
    runs = list(PackagingRun.objects.filter(export=export).order_by("attempt"))
    assert [(r.attempt, r.status, r.error_code) for r in runs] == [
        (1, PackagingRunStatus.RETRYING, "storage_unavailable"),
        (2, PackagingRunStatus.FAILED, "storage_unavailable"),
    ]
    assert export.status == ExportStatus.FAILED and export.packaging_attempts == 2
    events = lifecycle(export)
    assert "narrative_export.packaging.retrying" in events and events[-1] == "narrative_export.packaging.failed"
    assert storages["artifacts"].listdir(STAGING_PREFIX.rstrip("/"))[1] == []


def test_the_task_retries_transient_errors_with_backoff(queued, allow_packaging, monkeypatch):
    from exports.tasks import package_execution_narrative_export as task

    assert task.name == "exports.package_execution_narrative_export"
    assert task.acks_late and task.autoretry_for == packaging.TRANSIENT_ERRORS and task.retry_backoff
    assert task.soft_time_limit and task.time_limit > task.soft_time_limit
    export = queued()
    calls = []
    real_publish = packaging.artifact_publish

    def flaky(staged, final_name):
        calls.append(final_name)
        if len(calls) == 1:
            raise StorageUnavailable("first try fails")
        return real_publish(staged, final_name)

    monkeypatch.setattr(packaging, "artifact_publish", flaky)
    task.apply(args=[export.pk], throw=False)  # eager retries run at once
    export.refresh_from_db()
    assert export.status == ExportStatus.PACKAGED
    statuses = list(PackagingRun.objects.filter(export=export).order_by("attempt").values_list("status", flat=True))
    assert statuses == [PackagingRunStatus.RETRYING, PackagingRunStatus.SUCCEEDED]


@pytest.mark.parametrize(
    "alter, offset, code",
    [(alter_plaintext, 5, "evidence_integrity_failed"), (flip_stored_byte, -1, "decryption_failed")],
    ids=["re-encrypted", "ciphertext"],
)
def test_evidence_altered_in_storage_fails_packaging(queued, allow_packaging, evidence_set, alter, offset, code):
    export = queued()
    alter(evidence_set["file"].storage_path, offset)
    assert export_package(export_id=export.pk) == PackagingOutcome.FAILED
    run = PackagingRun.objects.get(export=export)
    assert run.error_code == code
    assert NarrativeExport.objects.get(pk=export.pk).status == ExportStatus.FAILED
    assert not ExportArtifact.objects.exists()


def test_a_tampered_stored_narrative_is_not_packaged(queued, allow_packaging):
    export = queued()
    NarrativeExport.objects.filter(pk=export.pk).update(narrative_markdown=export.narrative_markdown + "x")
    assert export_package(export_id=export.pk) == PackagingOutcome.FAILED
    assert PackagingRun.objects.get(export=export).error_code == "narrative_integrity_failed"


def test_a_lost_workers_run_is_abandoned_and_its_staged_bytes_removed(queued, allow_packaging):
    export = queued()
    NarrativeExport.objects.filter(pk=export.pk).update(status=ExportStatus.PACKAGING, packaging_attempts=1)
    PackagingRun.objects.create(export=export, attempt=1, started_at=timezone.now() - timedelta(minutes=30))
    storage = storages["artifacts"]
    leftover = storage.path(f"{STAGING_PREFIX}{export.pk}-v1-deadbeef.partial")
    import os

    os.makedirs(os.path.dirname(leftover), exist_ok=True)
    with open(leftover, "wb") as handle:
        handle.write(b"partial")
    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED
    runs = list(PackagingRun.objects.filter(export=export).order_by("attempt"))
    assert [(r.attempt, r.status, r.error_code) for r in runs] == [
        (1, PackagingRunStatus.ABANDONED, "worker_lost"),
        (2, PackagingRunStatus.SUCCEEDED, ""),
    ]
    assert not os.path.exists(leftover)


def test_sweeper_redispatches_stuck_exports(queued, sent, django_capture_on_commit_callbacks):
    stuck, fresh, lost = queued(), queued(), queued()
    NarrativeExport.objects.filter(pk=stuck.pk).update(queued_at=timezone.now() - timedelta(hours=1))
    NarrativeExport.objects.filter(pk=lost.pk).update(status=ExportStatus.PACKAGING)
    PackagingRun.objects.create(export=lost, attempt=1, started_at=timezone.now() - timedelta(hours=1))
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert exports_sweep_stuck() == [stuck.pk, lost.pk]
    assert sent == [stuck.pk, lost.pk]
    assert fresh.pk not in sent


def test_replay_gives_the_same_sha256(queued, allow_packaging):
    export = queued()
    export_package(export_id=export.pk)
    result = export_replay(export=NarrativeExport.objects.get(pk=export.pk))
    assert result.identical and result.replayed_sha256 == ExportArtifact.objects.get().sha256


def approval_record(export):
    signature = n.Signature(
        stage_index=1,
        stage_name="QA approval",
        required_role="qa_approver",
        signer_name="Avery Lindqvist",
        signed_at=export.created_at + timedelta(hours=1),
        meaning="Approved for release",
        comment="",
        digest=export.narrative_digest,
        decision=n.Decision.APPROVE,
    )
    return ApprovalRecord(signatures=(signature,), document={"export_id": export.pk, "signatures": ["qa"]})


def forged_record(export):
    record = approval_record(export)
    forged = n.Signature(**{**{f: getattr(record.signatures[0], f) for f in n.Signature.__slots__}, "digest": "0" * 64})
    return ApprovalRecord(signatures=(forged,), document={})


def test_the_approval_record_provider_supplies_signatures(queued, allow_packaging, settings, tmp_path):
    from exports.bundle import extract_bundle

    settings.DOSSIER_APPROVAL_RECORD_PROVIDER = "tests.exports.test_services_packaging.approval_record"
    export = queued()
    export_package(export_id=export.pk)
    artifact = ExportArtifact.objects.get()
    bag = extract_bundle(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path / "x")
    narrative = (bag / "data" / "narrative.md").read_text()
    approval_text, record = n.split_packaged(narrative)
    assert approval_text == export.narrative_markdown
    assert "Avery Lindqvist" in record
    assert (bag / "data" / "approvals.json").read_text().startswith('{\n  "export_id"')


def test_a_signature_over_another_digest_is_never_packaged(queued, allow_packaging, settings):
    settings.DOSSIER_APPROVAL_RECORD_PROVIDER = "tests.exports.test_services_packaging.forged_record"
    export = queued()
    assert export_package(export_id=export.pk) == PackagingOutcome.FAILED
    assert PackagingRun.objects.get().error_code == "signature_digest_mismatch"


def test_missing_evidence_file_fails_with_a_clear_code(queued, allow_packaging, evidence_set):
    export = queued()
    storages["artifacts"].delete(Evidence.objects.get(pk=evidence_set["file"].pk).storage_path)
    assert export_package(export_id=export.pk) == PackagingOutcome.FAILED
    assert PackagingRun.objects.get().error_code == "evidence_missing"
