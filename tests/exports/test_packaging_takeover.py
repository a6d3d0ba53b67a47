"""The packaging lease's heartbeat and the takeover of lost workers (docs/architecture.md, "Packaging leases"),
and storage faults named while packaging (docs/errors.md)."""

from __future__ import annotations

import errno
import os
import time
from datetime import timedelta

import psycopg
import pytest
from django.core.files.storage import storages
from django.db import connection
from django.utils import timezone

from exports.choices import ExportStatus, PackagingRunStatus
from exports.events import EventType
from exports.models import ExecutionEvent, ExportArtifact, NarrativeExport, PackagingRun
from exports.services import packaging
from exports.services.packaging import PackagingOutcome, export_package, packaging_takeover_stale
from exports.storage import STAGING_PREFIX, StorageFull, StorageUnavailable

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    from exports.tasks import package_execution_narrative_export

    calls: list[int] = []
    monkeypatch.setattr(package_execution_narrative_export, "delay", calls.append)
    return calls


@pytest.fixture
def packaging_export(make_export, allow_packaging, sent, django_capture_on_commit_callbacks):
    """An export in ``packaging`` whose attempt 1 was started by a worker (the run row), with staged bytes."""

    def make(*, heartbeat_age: timedelta = timedelta(0)):
        export = make_export()
        NarrativeExport.objects.filter(pk=export.pk).update(status=ExportStatus.PACKAGING, packaging_attempts=1)
        beat = timezone.now() - heartbeat_age
        run = PackagingRun.objects.create(export=export, attempt=1, started_at=beat, heartbeat_at=beat)
        export.refresh_from_db()
        return export, run

    return make


def _stage(name: str) -> str:
    path = storages["artifacts"].path(f"{STAGING_PREFIX}{name}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"half a bundle")
    return path


def _events(export) -> list[str]:
    rows = ExecutionEvent.objects.filter(execution_id=export.execution_id, payload__export_id=export.pk)
    return list(rows.order_by("sequence").values_list("event_type", flat=True))


def test_a_run_whose_lease_is_free_is_taken_over_at_once(packaging_export, sent, django_capture_on_commit_callbacks):
    export, run = packaging_export()  # heartbeat fresh, but no session holds the lease: the worker is gone
    own = _stage(f"{export.pk}-v1-r{run.pk}-0a1b.partial")
    other = _stage(f"{export.pk + 1000}-v1-r{run.pk + 1000}-0a1b.partial")
    with django_capture_on_commit_callbacks(execute=True):
        assert packaging_takeover_stale() == [export.pk]
    run.refresh_from_db()
    export.refresh_from_db()
    assert (run.status, run.error_code) == (PackagingRunStatus.ABANDONED, "worker_lost")
    assert export.status == ExportStatus.QUEUED and export.packaging_queue_state["error_code"] == "worker_lost"
    assert _events(export)[-1] == EventType.PACKAGING_TAKEN_OVER
    assert sent == [export.pk]
    assert not os.path.exists(own) and os.path.exists(other)
    assert packaging_takeover_stale() == []  # nothing left to take over

    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED
    statuses = PackagingRun.objects.filter(export=export).order_by("attempt").values_list("status", flat=True)
    assert list(statuses) == [PackagingRunStatus.ABANDONED, PackagingRunStatus.SUCCEEDED]


def test_a_run_whose_lease_a_live_session_holds_is_left_alone(packaging_export, sent):
    export, run = packaging_export(heartbeat_age=timedelta(minutes=5))
    key = (packaging._LEASE_NAMESPACE << 32) | export.pk
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], password=s["PASSWORD"] or None,
        dbname=s["NAME"], autocommit=True,
    ) as live:  # fmt: skip
        live.execute("SELECT pg_advisory_lock(%s)", [key])
        assert packaging_takeover_stale() == []
        assert export_package(export_id=export.pk) == PackagingOutcome.BUSY
    run.refresh_from_db()
    assert run.status == PackagingRunStatus.RUNNING and sent == []


def test_behind_a_transaction_pool_the_heartbeat_is_the_lease(packaging_export, settings, sent):
    settings.DOSSIER_PACKAGING_SESSION_LEASE = False
    export, run = packaging_export(heartbeat_age=timedelta(seconds=5))
    assert packaging_takeover_stale() == []
    assert export_package(export_id=export.pk) == PackagingOutcome.BUSY  # a live worker's fresh heartbeat
    assert PackagingRun.objects.filter(export=export).count() == 1

    PackagingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=31))
    assert packaging_takeover_stale() == [export.pk]
    run.refresh_from_db()
    assert run.error_code == "worker_lost"
    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED


def test_an_attempt_taken_over_while_it_builds_publishes_nothing(queued_export, monkeypatch):
    export = queued_export()
    real_build = packaging._build_staged

    def build_then_lose_the_lease(export, **kwargs):
        result = real_build(export, **kwargs)
        PackagingRun.objects.filter(export=export).update(status=PackagingRunStatus.ABANDONED)
        return result

    monkeypatch.setattr(packaging, "_build_staged", build_then_lose_the_lease)
    assert export_package(export_id=export.pk) == PackagingOutcome.TAKEN_OVER
    assert not ExportArtifact.objects.exists()
    assert storages["artifacts"].listdir(STAGING_PREFIX.rstrip("/"))[1] == []


@pytest.fixture
def queued_export(make_export, allow_packaging, sent, django_capture_on_commit_callbacks):
    def make():
        export = make_export()
        with django_capture_on_commit_callbacks(execute=True):
            packaging.packaging_enqueue(export=export)
        export.refresh_from_db()
        return export

    return make


@pytest.mark.django_db(transaction=True)
def test_a_running_attempt_touches_its_heartbeat(queued_export, settings, monkeypatch):
    settings.DOSSIER_PACKAGING_HEARTBEAT_SECONDS = 0.2
    export = queued_export()
    real_build = packaging._build_staged
    seen = []

    def slow_build(export, **kwargs):
        run = PackagingRun.objects.get(export=export, status=PackagingRunStatus.RUNNING)
        time.sleep(1.5)
        seen.append((run.heartbeat_at, PackagingRun.objects.get(pk=run.pk).heartbeat_at))
        return real_build(export, **kwargs)

    monkeypatch.setattr(packaging, "_build_staged", slow_build)
    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED
    [(at_start, during)] = seen
    assert during > at_start


@pytest.mark.parametrize(
    "fault, code",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "storage_full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "storage_full"),
        (OSError(errno.EIO, "Input/output error"), "storage_unavailable"),
    ],
    ids=["enospc", "edquot", "eio"],
)
def test_storage_faults_while_writing_are_retried_then_fail_named(queued_export, monkeypatch, fault, code):
    export = queued_export()

    def write_then_fail(*, out, **kwargs):
        out.write(b"x" * 4096)
        raise fault

    monkeypatch.setattr(packaging, "bundle_build", write_then_fail)
    expected = StorageFull if code == "storage_full" else StorageUnavailable
    with pytest.raises(expected):
        export_package(export_id=export.pk, final_attempt=False)
    assert NarrativeExport.objects.get(pk=export.pk).status == ExportStatus.QUEUED
    with pytest.raises(expected):
        export_package(export_id=export.pk, final_attempt=True)
    runs = PackagingRun.objects.filter(export=export).order_by("attempt")
    assert [(r.status, r.error_code) for r in runs] == [
        (PackagingRunStatus.RETRYING, code),
        (PackagingRunStatus.FAILED, code),
    ]
    assert NarrativeExport.objects.get(pk=export.pk).status == ExportStatus.FAILED
    assert storages["artifacts"].listdir(STAGING_PREFIX.rstrip("/"))[1] == []
    assert issubclass(StorageFull, packaging.TRANSIENT_ERRORS)


def test_staged_bytes_are_private_and_named_after_their_run(queued_export, monkeypatch):
    export = queued_export()
    real_build = packaging._build_staged
    staged = []

    def build(export, **kwargs):
        result = real_build(export, **kwargs)
        staged.append((result[0].staging_name, os.stat(result[0].local_path).st_mode & 0o777))
        return result

    monkeypatch.setattr(packaging, "_build_staged", build)
    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED
    run = PackagingRun.objects.get(export=export)
    [(name, mode)] = staged
    assert name.startswith(f"{STAGING_PREFIX}{export.pk}-v1-r{run.pk}-") and name.endswith(".partial")
    assert mode == 0o600


def test_beat_runs_the_takeover_every_15_seconds(packaging_export, settings, sent, django_capture_on_commit_callbacks):
    from exports.tasks import take_over_stale_packaging

    entry = settings.DOSSIER_SCHEDULES["exports-packaging-takeover"]
    assert entry["task"] == take_over_stale_packaging.name and entry["every"] == timedelta(seconds=15)
    export, _ = packaging_export()
    with django_capture_on_commit_callbacks(execute=True):
        assert take_over_stale_packaging.apply().get() == [export.pk]
    assert sent == [export.pk]


def test_an_object_store_runs_local_leftovers_are_removed_with_it(tmp_path, settings):
    from django.core.files.storage import InMemoryStorage

    from exports.storage import staged_leftovers_purge

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    mine, other = tmp_path / "dossier-bundle-r41-abc", tmp_path / "dossier-bundle-r4-abc"
    mine.write_bytes(b"half"), other.write_bytes(b"half")
    assert staged_leftovers_purge(export_id=1, version=1, run_id=41, storage=InMemoryStorage()) == 1
    assert not mine.exists() and other.exists()
