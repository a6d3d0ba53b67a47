"""Packaging narrative exports into signed bundles: enqueue, build, publish, and recover from lost workers.

The one way in is :func:`packaging_enqueue` (approvals' ``dispatch_export_for_packaging`` calls it). The worker
runs :func:`export_package`, which is idempotent and safe under redelivery:

1. It takes the export's packaging lease (a PostgreSQL session advisory lock, released by the server if the
   worker dies), so two workers never build the same version at once and a lost worker is detected exactly.
   Behind a transaction pool (``DOSSIER_PACKAGING_SESSION_LEASE`` off) the run's heartbeat row is the lease.
2. Under the export's row lock it checks the status, marks runs of dead workers abandoned, removes their staged
   bytes, and asks every packaging gate. No gate configured, or any gate refusing, leaves the export waiting
   (``awaiting_approval``) with a blocked ``PackagingRun``: nothing ships because nobody was asked.
3. Outside any transaction it builds the bundle into a staging name, streaming evidence once.
4. Under the row lock again it asks the gates a second time (an approval reset during the build wins),
   publishes atomically and only then commits the artifact row. A version is packaged at most once; bundles
   are reproducible, so republishing after a crash between publish and commit writes identical bytes.

While an attempt runs, a thread touches its run's ``heartbeat_at`` every few seconds. Every worker (at start and
then every ``DOSSIER_PACKAGING_TAKEOVER_EVERY_SECONDS``) and a frequent periodic task call
:func:`packaging_takeover_stale`, which finds runs whose worker is gone, marks them abandoned, removes their staged
bytes and queues the export again, without waiting for the broker's visibility timeout (docs/architecture.md).
An attempt that was taken over publishes nothing: the publish step checks that its run is still running.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, BinaryIO, cast

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import Conflict
from config.locks import postgresql_advisory_lock
from exports import narratives as n
from exports.bundle import (
    BundleError,
    BundleResult,
    BundleSpec,
    Compression,
    DerivedPayloadFile,
    PayloadFile,
    build_bundle,
)
from exports.choices import QUEUEABLE_EXPORT_STATUSES, ExportStatus, PackagingRunStatus
from exports.crypto import CryptoError
from exports.events import EventType
from exports.formats import BUNDLE_FORMAT_VERSION, BUNDLE_FORMAT_VERSIONS, RENDITION_FORMAT
from exports.hooks import ApprovalRecord, GateResult, approval_record_provider, packaging_gates
from exports.models import ExportArtifact, NarrativeExport, PackagingRun, SigningKey
from exports.queue_state import BLOCKED, PACKAGED, PACKAGING, QUEUED, QueueState
from exports.services.pdf import RenditionFailed, TimelinePages, rendition_inputs, rendition_render
from exports.services.rendering import (
    AttachmentPlan,
    EvidenceChanged,
    attachment_plans,
    event_record_line,
    redactor_for,
    stored_narrative_digest,
    timeline_events,
)
from exports.services.signing_keys import signer_for, signing_key_active
from exports.services.transitions import export_transition
from exports.storage import (
    ArtifactMissing,
    StorageFull,
    StorageUnavailable,
    artifact_name,
    artifact_publish,
    artifact_staged,
    bundle_name,
    staged_leftovers_purge,
    storage_error_is_full,
    storage_errors_as_unavailable,
    storage_open_stream,
)
from governance.choices import TimestampStatus, TimestampSubject
from governance.models import OutboxMessage, TrustedTimestamp
from governance.services.audit import audit_record
from governance.services.outbox import outbox_enqueue
from governance.services.timestamps import timestamp_request

logger = logging.getLogger(__name__)

# Errors worth retrying: they come from the environment, not from the export.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (StorageUnavailable, OperationalError, InterfaceError)
_LEASE_NAMESPACE = 0x444F5353  # "DOSS"


class PackagingOutcome(StrEnum):
    PACKAGED = "packaged"
    ALREADY_PACKAGED = "already_packaged"
    BLOCKED = "blocked"
    NOT_QUEUED = "not_queued"
    BUSY = "busy"
    FAILED = "failed"
    MISSING = "missing"
    TAKEN_OVER = "taken_over"


class PackagingFailure(Exception):
    """A packaging error caused by the export or its evidence; retrying will not help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- Queue state ----------------------------------------------------------------------------------------------


def _queue_state(
    export: NarrativeExport, status: str, *, start: QueueState | None = None, **changes: Any
) -> QueueState:
    """The worker's next queue state: ``status``, with the pending stage and forecast of ``start`` (default: the
    stored state) carried over."""
    start = start or QueueState.from_json(export.packaging_queue_state)
    return start.advanced(status, attempts=export.packaging_attempts, **changes)


# --- Enqueue --------------------------------------------------------------------------------------------------


HANDLER_PACKAGE = "exports.package"


def _dispatch_on_commit(export_id: int) -> None:
    """Send the packaging task through the outbox (docs/architecture.md, "The outbox"): the message commits with
    the export's ``queued`` state, so a broker outage delays packaging but never loses it or fails the request."""
    outbox_enqueue(handler=HANDLER_PACKAGE, payload={"export_id": export_id})


def packaging_dispatch(message: OutboxMessage) -> None:
    """The outbox handler of ``exports.package``: send the task. A redelivery is harmless: the worker returns early
    for an export already packaged, and the packaging lease keeps a second worker off one being packaged."""
    from exports.tasks import package_execution_narrative_export

    package_execution_narrative_export.delay(message.payload["export_id"])


def packaging_enqueue(
    *, export: NarrativeExport, actor=None, locked: bool = False, cleared: QueueState | None = None
) -> NarrativeExport:
    """Queue an export for packaging: the only place that sets ``queued``.

    Records ``narrative_export.packaging.queued`` and sends the task through the outbox once the transaction
    commits. Queueing an export that is already queued sends the task again without a second event (the worker
    is idempotent).
    Whether packaging may proceed is decided by the packaging gates, in the worker.

    ``locked=True`` says ``export`` is the caller's row lock with its execution, read in the caller's transaction
    and kept current: it is queued as it is, not read again. ``cleared`` is the queue state the caller's check
    just found (its pending stage and forecast carry into ``queued`` instead of the stored ones).
    """
    if locked:
        with transaction.atomic(savepoint=False):  # inside the caller's transaction: writes only
            return _enqueue_locked(export, actor=actor, cleared=cleared)
    with transaction.atomic():
        row = NarrativeExport.objects.select_for_update(of=("self",)).select_related("execution").get(pk=export.pk)
        _enqueue_locked(row, actor=actor, cleared=cleared)
    export.status, export.queued_at = row.status, row.queued_at
    export.packaging_queue_state = row.packaging_queue_state
    return row


def _enqueue_locked(locked: NarrativeExport, *, actor, cleared: QueueState | None) -> NarrativeExport:
    if locked.status not in QUEUEABLE_EXPORT_STATUSES:
        raise Conflict(
            f"Export {locked.pk} is {locked.status} and cannot be queued for packaging.",
            code="export_not_queueable",
            details={"status": locked.status},
        )
    if locked.status != ExportStatus.QUEUED:
        export_transition(
            export=locked,
            to=ExportStatus.QUEUED,
            actor=actor,
            event_type=EventType.PACKAGING_QUEUED,
            payload={"previous_status": locked.status},
            queue_state=_queue_state(locked, QUEUED, start=cleared),
        )
    _dispatch_on_commit(locked.pk)
    return locked


def exports_sweep_stuck(*, older_than: timedelta | None = None) -> list[int]:
    """Re-dispatch exports stuck in ``queued`` (a lost broker message) or ``packaging`` with a run that has not
    finished in time (a lost worker: the new task detects it through the lease). Returns the export ids."""
    age = older_than if older_than is not None else timedelta(seconds=settings.DOSSIER_PACKAGING_STUCK_AFTER_SECONDS)
    cutoff = timezone.now() - age
    queued = NarrativeExport.objects.filter(status=ExportStatus.QUEUED, queued_at__lte=cutoff)
    packaging = NarrativeExport.objects.filter(
        status=ExportStatus.PACKAGING,
        packaging_runs__status=PackagingRunStatus.RUNNING,
        packaging_runs__started_at__lte=cutoff,
    )
    ids = sorted(set(queued.values_list("id", flat=True)) | set(packaging.values_list("id", flat=True)))
    with transaction.atomic():
        for export in NarrativeExport.objects.filter(id__in=ids).select_related("execution").order_by("id"):
            audit_record(
                action=EventType.PACKAGING_REDISPATCHED,
                obj=export,
                team_id=export.execution.team_id,
                payload={
                    "status": export.status,
                    "queued_at": export.queued_at.isoformat() if export.queued_at else None,
                },
            )
            _dispatch_on_commit(export.pk)
    return ids


# --- The lease ------------------------------------------------------------------------------------------------


def _session_lease_active() -> bool:
    """True when the lease is a session advisory lock; otherwise a run's fresh heartbeat holds it."""
    return connection.vendor == "postgresql" and settings.DOSSIER_PACKAGING_SESSION_LEASE


@contextmanager
def packaging_lease(export_id: int) -> Iterator[bool]:
    """Yield True when this process may package the export now, False when a live worker already does.

    On PostgreSQL this is a session-level advisory lock: held across transactions and released by the server
    when the holder's connection dies, which is what tells a lost worker from a slow one. Elsewhere (SQLite,
    one process, or a transaction pool that cannot carry session locks) it always succeeds, and ``_start``
    leaves an export alone while one of its runs has a fresh heartbeat.
    """
    if not _session_lease_active():
        yield True
        return
    with postgresql_advisory_lock((_LEASE_NAMESPACE << 32) | (export_id & 0xFFFFFFFF)) as held:
        yield held


def _stale_cutoff(stale_after: timedelta | None = None):
    age = stale_after if stale_after is not None else timedelta(seconds=settings.DOSSIER_PACKAGING_STALE_AFTER_SECONDS)
    return timezone.now() - age


def _is_stale(run: PackagingRun, cutoff) -> bool:
    return (run.heartbeat_at or run.started_at) < cutoff


class _Heartbeat:
    """Touches a running attempt's ``heartbeat_at`` every ``every`` seconds from its own thread, on its own
    database connection, until stopped. A beat that fails (the database away for a moment) is retried next time."""

    def __init__(self, run_id: int, every: float) -> None:
        self._run_id, self._every = run_id, every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, name=f"heartbeat-run-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._every + 10)

    def _beat_until_stopped(self) -> None:
        try:
            while not self._stopped.wait(self._every):
                self._beat()
        finally:
            connections.close_all()  # this thread's own connection

    def _beat(self) -> None:
        try:
            PackagingRun.objects.filter(pk=self._run_id, status=PackagingRunStatus.RUNNING).update(
                heartbeat_at=timezone.now()
            )
        except (OperationalError, InterfaceError) as exc:
            logger.warning("heartbeat of packaging run %s missed: %s", self._run_id, exc)
            connections.close_all()


@contextmanager
def _heartbeat(run_id: int) -> Iterator[None]:
    every = settings.DOSSIER_PACKAGING_HEARTBEAT_SECONDS
    if every <= 0:
        yield
        return
    beat = _Heartbeat(run_id, every)
    beat.start()
    try:
        yield
    finally:
        beat.stop()


def _abandon(run: PackagingRun, now) -> None:
    run.status, run.finished_at, run.duration_ms = PackagingRunStatus.ABANDONED, now, _elapsed_ms(run, now)
    run.error_code, run.error_message = "worker_lost", "the worker stopped before finishing this attempt"
    run.save(update_fields=["status", "finished_at", "duration_ms", "error_code", "error_message"])


def _abandon_lost_runs(export: NarrativeExport, now) -> bool:
    """Mark the export's running attempts abandoned, since the caller holds the lease; False (nothing changed)
    when the lease is the heartbeat and one of them is still alive."""
    lost = list(PackagingRun.objects.filter(export=export, status=PackagingRunStatus.RUNNING))
    if not _session_lease_active() and any(not _is_stale(run, _stale_cutoff()) for run in lost):
        return False
    for run in lost:
        _abandon(run, now)
    return True


# --- Taking over from lost workers ----------------------------------------------------------------------------


def packaging_takeover_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Take over the packaging of exports whose worker is gone; returns their ids.

    A running attempt is lost when its lease is free (the session lock died with the worker's connection) or,
    where the heartbeat is the lease, when its heartbeat is older than ``stale_after``
    (``DOSSIER_PACKAGING_STALE_AFTER_SECONDS``). Each lost attempt is marked ``abandoned`` (``worker_lost``), its
    staged bytes are removed, and the export goes back to ``queued`` and is dispatched again (after the lease is
    released, so the new task can take it). Safe to run from many processes at once. Called by every worker
    (``exports/worker.py``) and by the periodic task ``exports.take_over_stale_packaging``.
    """
    cutoff = _stale_cutoff(stale_after)
    running = PackagingRun.objects.filter(status=PackagingRunStatus.RUNNING)
    if not _session_lease_active():
        running = running.filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
    taken = []
    for export_id in sorted(set(running.values_list("export_id", flat=True))):
        with packaging_lease(export_id) as held:
            queued = held and _take_over(export_id=export_id, cutoff=cutoff)
        if queued:
            _dispatch_on_commit(export_id)
            taken.append(export_id)
    return taken


def _take_over(*, export_id: int, cutoff) -> bool:
    """Abandon the export's lost attempts and queue it again; True when it was queued. Storage errors while
    removing staged bytes leave everything as it was for the next round."""
    try:
        with transaction.atomic():
            export = NarrativeExport.objects.select_for_update(of=("self",)).filter(pk=export_id).first()
            running = PackagingRun.objects.select_for_update().filter(status=PackagingRunStatus.RUNNING)
            runs = list(running.filter(export_id=export_id))
            if export is None or not runs:
                return False
            if not _session_lease_active() and any(not _is_stale(run, cutoff) for run in runs):
                return False
            return _requeue_lost(export, runs)
    except StorageUnavailable as exc:
        logger.warning("could not take over export %s yet: %s", export_id, exc, extra={"export_id": export_id})
        return False


def _requeue_lost(export: NarrativeExport, runs: list[PackagingRun]) -> bool:
    now = timezone.now()
    for run in runs:
        _abandon(run, now)
        staged_leftovers_purge(export_id=export.pk, version=export.version, run_id=run.pk)
    if export.status != ExportStatus.PACKAGING:
        return False
    export_transition(
        export=export,
        to=ExportStatus.QUEUED,
        event_type=EventType.PACKAGING_TAKEN_OVER,
        payload={"run_ids": [r.pk for r in runs], "attempt": export.packaging_attempts, "error_code": "worker_lost"},
        queue_state=_queue_state(export, QUEUED, error_code="worker_lost"),
    )
    logger.warning(
        "took over the packaging of export %s from a lost worker (runs %s)",
        export.pk,
        [run.pk for run in runs],
        extra={"export_id": export.pk, "error_code": "worker_lost"},
    )
    return True


# --- Gates ----------------------------------------------------------------------------------------------------


def _ask_gates(export: NarrativeExport) -> list[GateResult]:
    results = []
    for gate in packaging_gates():
        name = f"{gate.__module__}.{gate.__qualname__}"
        try:
            result = gate(export)
        except Exception as exc:  # a broken gate refuses: nothing ships on an unanswered question
            logger.exception("packaging gate %s failed for export %s", name, export.pk)
            result = GateResult(allowed=False, gate=name, reason=f"gate error: {exc}")
        results.append(result)
    return results


def _gate_rows(results: list[GateResult]) -> list[dict[str, Any]]:
    return [{"gate": r.gate, "allowed": r.allowed, "reason": r.reason} for r in results]


def _refusal(results: list[GateResult]) -> tuple[str, str] | None:
    if not results:
        return "no_packaging_gate", "No packaging gate is configured (DOSSIER_PACKAGING_GATES); packaging is refused."
    refused = [r for r in results if not r.allowed]
    if refused:
        return "gate_blocked", "; ".join(f"{r.gate}: {r.reason or 'refused'}" for r in refused)
    return None


def _block(export: NarrativeExport, run: PackagingRun, results: list[GateResult], code: str, message: str) -> None:
    state = {key: value for r in results for key, value in (r.state or {}).items()}
    export_transition(
        export=export,
        to=ExportStatus.AWAITING_APPROVAL,
        event_type=None,
        queue_state=_queue_state(export, BLOCKED, blocked_by=code, reason=message, **state),
    )
    now = timezone.now()
    run.status, run.error_code, run.error_message = PackagingRunStatus.BLOCKED, code, message
    run.finished_at, run.duration_ms = now, _elapsed_ms(run, now)
    run.gates = _gate_rows(results)
    run.save()


def _elapsed_ms(run: PackagingRun, now) -> int:
    return max(0, int((now - run.started_at).total_seconds() * 1000))


# --- The worker's service -------------------------------------------------------------------------------------


@dataclass
class _Started:
    export: NarrativeExport
    run: PackagingRun


def export_package(*, export_id: int, task_id: str | None = None, final_attempt: bool = True) -> PackagingOutcome:
    """Package one export version (the body of the Celery task). Idempotent; see the module docstring.

    Transient errors (storage, database) are recorded as ``retrying`` and re-raised for the task to retry,
    or as ``failed`` when ``final_attempt``. Other errors fail the export with a stable error code.
    """
    with packaging_lease(export_id) as held:
        if not held:
            logger.info("export %s is being packaged by another live worker", export_id)
            return PackagingOutcome.BUSY
        started = _start(export_id=export_id, task_id=task_id or "")
        if isinstance(started, PackagingOutcome):
            return started
        with _heartbeat(started.run.pk):
            return _package_started(started, final_attempt=final_attempt)


def _package_started(started: _Started, *, final_attempt: bool) -> PackagingOutcome:
    """Build and publish one started attempt, recording how it ended."""
    staged = None
    try:
        staged, result = _build_staged(started.export, run=started.run)
        return _publish(started, staged, result)
    except TRANSIENT_ERRORS as exc:
        _discard(staged)
        _fail(started, code=_transient_code(exc), message=str(exc), retrying=not final_attempt)
        raise
    except OSError as exc:  # met outside the storage helpers (a temporary file, say): a storage fault all the same
        _discard(staged)
        named = StorageFull(str(exc)) if storage_error_is_full(exc) else StorageUnavailable(str(exc))
        _fail(started, code=_transient_code(named), message=str(named), retrying=not final_attempt)
        raise named from exc
    except SoftTimeLimitExceeded:
        _discard(staged)
        _fail(started, code="time_limit_exceeded", message="packaging exceeded its time limit", retrying=False)
        raise
    except PackagingFailure as exc:
        _discard(staged)
        _fail(started, code=exc.code, message=exc.message, retrying=False)
        return PackagingOutcome.FAILED
    except CryptoError as exc:  # evidence that does not open, or an unusable keyring (docs/encryption.md)
        _discard(staged)
        _fail(started, code=exc.code, message=exc.message, retrying=False)
        return PackagingOutcome.FAILED
    except Exception as exc:
        _discard(staged)
        _fail(started, code="internal_error", message=f"{type(exc).__name__}: {exc}", retrying=False)
        raise


def _transient_code(exc: BaseException) -> str:
    if isinstance(exc, StorageFull):
        return "storage_full"
    return "storage_unavailable" if isinstance(exc, StorageUnavailable) else "database_unavailable"


@transaction.atomic
def _start(*, export_id: int, task_id: str) -> _Started | PackagingOutcome:
    export = (
        NarrativeExport.objects.select_for_update(of=("self",))
        .select_related("execution__team", "template_snapshot", "author")
        .filter(pk=export_id)
        .first()
    )
    if export is None:
        return PackagingOutcome.MISSING
    if ExportArtifact.objects.filter(export=export).exists():
        return PackagingOutcome.ALREADY_PACKAGED
    if export.status not in (ExportStatus.QUEUED, ExportStatus.PACKAGING):
        logger.info("export %s is %s, not queued: nothing to package", export_id, export.status)
        return PackagingOutcome.NOT_QUEUED
    now = timezone.now()
    if not _abandon_lost_runs(export, now):  # we hold the lease, so whoever started these is gone
        logger.info("export %s is being packaged by another live worker", export_id)
        return PackagingOutcome.BUSY
    staged_leftovers_purge(export_id=export.pk, version=export.version)
    export.packaging_attempts += 1
    run = PackagingRun(
        export=export,
        attempt=export.packaging_attempts,
        task_id=task_id,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started_at=now,
        heartbeat_at=now,
    )
    results = _ask_gates(export)
    refusal = _refusal(results)
    if refusal is not None:
        export.save(update_fields=["packaging_attempts", "updated_at"])
        run.save()
        _block(export, run, results, *refusal)
        return PackagingOutcome.BLOCKED
    run.gates = _gate_rows(results)
    run.save()
    export_transition(
        export=export,
        to=ExportStatus.PACKAGING,
        event_type=EventType.PACKAGING_STARTED,
        payload={"attempt": run.attempt, "run_id": run.pk, "task_id": task_id},
        queue_state=_queue_state(export, PACKAGING),
        save_also=["packaging_attempts"],
    )
    return _Started(export=export, run=run)


def _discard(staged) -> None:
    if staged is None:
        return
    try:
        staged.discard()
    except StorageUnavailable:
        logger.warning("could not discard staged artifact %s; the next attempt removes it", staged.staging_name)


def _fail(started: _Started, *, code: str, message: str, retrying: bool) -> None:
    """Record a failed attempt. Best effort: when the database itself is down this is logged instead."""
    try:
        with transaction.atomic():
            export = (
                NarrativeExport.objects.select_for_update(of=("self",))
                .select_related("execution")
                .get(pk=started.export.pk)
            )
            run = PackagingRun.objects.select_for_update().get(pk=started.run.pk)
            if run.status != PackagingRunStatus.RUNNING:  # taken over meanwhile: the export is someone else's now
                logger.warning("packaging run %s was taken over; its failure (%s) is not recorded", run.pk, code)
                return
            now = timezone.now()
            run.status = PackagingRunStatus.RETRYING if retrying else PackagingRunStatus.FAILED
            run.finished_at, run.duration_ms = now, _elapsed_ms(run, now)
            run.error_code, run.error_message = code, message[:4000]
            run.save()
            to = ExportStatus.QUEUED if retrying else ExportStatus.FAILED
            export_transition(
                export=export,
                to=to,
                event_type=EventType.PACKAGING_RETRYING if retrying else EventType.PACKAGING_FAILED,
                payload={"attempt": run.attempt, "run_id": run.pk, "error_code": code, "error_message": message[:500]},
                queue_state=_queue_state(export, to, error_code=code),
            )
        logger.warning(
            "packaging of export %s failed (%s): %s",
            export.pk,
            "will retry" if retrying else "final",
            message[:500],
            extra={"export_id": export.pk, "run_id": run.pk, "error_code": code},
        )
    except (OperationalError, InterfaceError):
        logger.exception(
            "could not record the failure of export %s (%s: %s)",
            started.export.pk,
            code,
            message,
            extra={"export_id": started.export.pk, "run_id": started.run.pk, "error_code": code},
        )


def _publish(started: _Started, staged, result: BundleResult) -> PackagingOutcome:
    with transaction.atomic():
        export = (
            NarrativeExport.objects.select_for_update(of=("self",))
            .select_related("execution__team")
            .get(pk=started.export.pk)
        )
        run = PackagingRun.objects.select_for_update().get(pk=started.run.pk)
        if run.status != PackagingRunStatus.RUNNING:  # taken over as lost: publish nothing (the lease was lost)
            staged.discard()
            return PackagingOutcome.TAKEN_OVER
        if ExportArtifact.objects.filter(export=export).exists():
            staged.discard()
            run.status, run.finished_at = PackagingRunStatus.SKIPPED, timezone.now()
            run.duration_ms = _elapsed_ms(run, run.finished_at)
            run.save()
            return PackagingOutcome.ALREADY_PACKAGED
        results = _ask_gates(export)
        refusal = _refusal(results)
        if refusal is not None:
            staged.discard()
            _block(export, run, results, *refusal)
            return PackagingOutcome.BLOCKED
        final_name = artifact_name(
            team_slug=export.execution.team.slug,
            execution_id=export.execution_id,
            export_id=export.pk,
            version=export.version,
            compression=result.compression,
        )
        artifact_publish(staged, final_name)
        now = timezone.now()
        artifact = _artifact_create(export, result, storage_path=final_name, stored_sha256=staged.stored_sha256)
        timestamp_request(
            subject_type=TimestampSubject.BUNDLE,
            subject_id=artifact.pk,
            data=result.tag_manifest_bytes,
            team_id=export.execution.team_id,
        )
        run.status, run.finished_at, run.bytes = PackagingRunStatus.SUCCEEDED, now, result.size
        run.duration_ms = _elapsed_ms(run, now)
        run.gates = _gate_rows(results)
        run.save()
        export_transition(
            export=export,
            to=ExportStatus.PACKAGED,
            event_type=EventType.PACKAGING_COMPLETED,
            payload={
                "attempt": run.attempt,
                "run_id": run.pk,
                "artifact_id": artifact.pk,
                "sha256": artifact.sha256,
                "size": artifact.size,
                "key_id": result.key_id,
                "duration_ms": run.duration_ms,
            },
            queue_state=_queue_state(export, PACKAGED),
        )
    return PackagingOutcome.PACKAGED


def _artifact_create(
    export: NarrativeExport, result: BundleResult, *, storage_path: str, stored_sha256: str
) -> ExportArtifact:
    return ExportArtifact.objects.create(
        export=export,
        storage_path=storage_path,
        stored_sha256=stored_sha256,
        bag_name=result.name,
        sha256=result.sha256,
        size=result.size,
        compression=result.compression,
        signing_key=SigningKey.objects.get(key_id=result.key_id),
        payload_oxum=result.payload_oxum,
        narrative_sha256=result.narrative_sha256,
        format_version=export.bundle_format_version,
        retain_until=export.retain_until,
        retention_mode=export.retention_mode,
    )


def _build_staged(export: NarrativeExport, *, run: PackagingRun):
    key = signing_key_active()
    compression = settings.DOSSIER_ARTIFACT_COMPRESSION
    with artifact_staged(export_id=export.pk, version=export.version, run_id=run.pk) as (staged, out):
        # The format the export was rendered with: its stored attachments and signed narrative follow its rules.
        result = bundle_build(
            export=export,
            out=out,
            signing_key=key,
            compression=compression,
            format_version=export.bundle_format_version,
            timestamps_as_of=run.started_at,
        )
    return staged, result


# --- Building the bundle --------------------------------------------------------------------------------------


def approval_record_for(export: NarrativeExport) -> ApprovalRecord:
    provider = approval_record_provider()
    if provider is None:
        return ApprovalRecord(
            signatures=(),
            document={
                "export_id": export.pk,
                "version": export.version,
                "narrative_digest": export.narrative_digest,
                "ladder": None,
                "signatures": [],
            },
        )
    return provider(export)


def packaged_narrative(
    export: NarrativeExport, record: ApprovalRecord, *, format_version: int = BUNDLE_FORMAT_VERSION
) -> str:
    """``narrative.md``: the stored approval text (exactly what was signed) plus the approval record, rendered
    with the text rules of ``format_version``."""
    recomputed = stored_narrative_digest(export)
    if recomputed != export.narrative_digest:
        raise PackagingFailure(
            "narrative_integrity_failed",
            f"the stored narrative hashes to {recomputed}, not the recorded digest {export.narrative_digest}",
        )
    for signature in record.signatures:
        if not signature.superseded and signature.digest != export.narrative_digest:
            raise PackagingFailure(
                "signature_digest_mismatch",
                f"the signature of stage {signature.stage_index} binds {signature.digest}, "
                f"not the narrative {export.narrative_digest}",
            )
    record_text = n.render_approval_record(record.signatures, inert_text=format_version >= 2)
    return export.narrative_markdown + "\n" + record_text


class _EvidenceReader:
    """A stored evidence file read once for the bundle: sha256-checked against the recorded digest as it
    streams (the bundle engine hashes sha512 in the same pass), optionally throttled."""

    def __init__(self, plan: AttachmentPlan, limit_bps: int) -> None:
        self._plan = plan
        self._limit = limit_bps
        self._hasher = hashlib.sha256()
        self._read = 0
        self._started = time.monotonic()
        try:
            self._file = storage_open_stream(plan.storage_path)
        except ArtifactMissing:
            raise PackagingFailure(
                "evidence_missing", f"evidence file {plan.evidence_id} is missing from storage"
            ) from None

    def __enter__(self) -> _EvidenceReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()

    def readinto(self, buffer) -> int:
        with storage_errors_as_unavailable(f"reading evidence {self._plan.evidence_id}"):
            readinto = getattr(self._file, "readinto", None)
            if readinto is not None:
                count = readinto(buffer)
            else:
                data = self._file.read(len(buffer))
                count = len(data)
                buffer[:count] = data
        if count:
            self._hasher.update(buffer[:count])
            self._read += count
            self._throttle()
        else:
            self._finish()
        return count

    def _throttle(self) -> None:
        if self._limit > 0:
            ahead = self._read / self._limit - (time.monotonic() - self._started)
            if ahead > 0:
                time.sleep(ahead)

    def _finish(self) -> None:
        digest = self._hasher.hexdigest()
        if digest != self._plan.sha256 or self._read != self._plan.size:
            raise PackagingFailure(
                "evidence_integrity_failed",
                f"evidence file {self._plan.evidence_id} has sha256 {digest} ({self._read} bytes), "
                f"recorded {self._plan.sha256} ({self._plan.size} bytes)",
            )


def _payload_for(plan: AttachmentPlan, limit_bps: int) -> PayloadFile:
    if plan.content is not None:
        return PayloadFile.from_bytes(plan.bundle_path, plan.content)
    # The bundle engine only enters the stream and calls ``readinto`` on it, all the reader provides.
    return PayloadFile(
        path=plan.bundle_path, size=plan.size, open=lambda: cast(BinaryIO, _EvidenceReader(plan, limit_bps))
    )


@dataclass
class _EventsFile:
    path: str
    sha256: str
    timeline: TimelinePages | None


@contextmanager
def _events_file(export: NarrativeExport, *, with_timeline: bool = False) -> Iterator[_EventsFile]:
    """``events.ndjson`` spooled to a temporary file (its size goes into the tar header before its bytes); with
    ``with_timeline`` the rendition's timeline pages are collected in the same pass."""
    handle, path = tempfile.mkstemp(prefix="dossier-events-", suffix=".ndjson", dir=settings.FILE_UPLOAD_TEMP_DIR)
    timeline = TimelinePages() if with_timeline else None
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            redactor = redactor_for(export.redaction_policy)
            for event in timeline_events(export=export, redactor=redactor):
                line = event_record_line(event)
                out.write(line)
                digest.update(line)
                if timeline is not None:
                    timeline.add(event)
        yield _EventsFile(path=path, sha256=digest.hexdigest(), timeline=timeline)
    finally:
        os.unlink(path)


def bag_info_for(export: NarrativeExport, *, format_version: int = BUNDLE_FORMAT_VERSION) -> list[tuple[str, str]]:
    retain = export.retain_until.date().isoformat() if export.retain_until else "none"
    numbered = [("Bundle-Format-Version", str(format_version))] if format_version >= 2 else []
    return [
        *numbered,
        ("Source-Organization", settings.DOSSIER_BUNDLE_SOURCE_ORGANIZATION),
        ("External-Identifier", str(export.pk)),
        ("Bag-Group-Identifier", str(export.execution_id)),
        ("Export-Version", str(export.version)),
        ("Template-Snapshot-Id", str(export.template_snapshot_id or "none")),
        ("Narrative-Digest", export.narrative_digest),
        ("Classification", export.classification),
        ("Retain-Until", retain),
        *([("Redaction", "off")] if redaction_off(export) else []),
    ]


def redaction_off(export: NarrativeExport) -> bool:
    """The export's template had redaction switched off by compliance when it was created (docs/redaction.md)."""
    return (export.redaction_policy or {}).get("enabled", True) is False


def export_document_for(export: NarrativeExport) -> Callable[[Any], dict[str, Any]]:
    def build(_digests) -> dict[str, Any]:
        return {
            "id": export.pk,
            "execution_id": export.execution_id,
            "version": export.version,
            "narrative_digest": export.narrative_digest,
            "template_snapshot_id": export.template_snapshot_id,
            "classification": export.classification,
            "retain_until": export.retain_until.date().isoformat() if export.retain_until else None,
            "team": export.execution.team.slug,
            "events_through_sequence": export.events_through_sequence,
            "evidence_manifest": export.evidence_manifest,
            "redaction_counts": export.redaction_counts,
        }

    return build


def bundle_build(
    *,
    export: NarrativeExport,
    out: BinaryIO,
    signing_key: SigningKey,
    compression: str,
    format_version: int = BUNDLE_FORMAT_VERSION,
    timestamps_as_of: datetime | None = None,
) -> BundleResult:
    """Write the bundle of ``export`` to ``out``. The same export, key, compression, format version and
    ``timestamps_as_of`` (the start of the packaging run: signature timestamps granted by then are carried) give
    the same bytes."""
    if format_version not in BUNDLE_FORMAT_VERSIONS:
        raise PackagingFailure("bundle_format_unknown", f"bundle format version {format_version} is not known")
    try:
        record = approval_record_for(export)
        narrative = packaged_narrative(export, record, format_version=format_version)
        plans = attachment_plans(export)
    except EvidenceChanged as exc:
        raise PackagingFailure("evidence_integrity_failed", str(exc)) from exc
    approvals = (json.dumps(record.document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    limit = settings.DOSSIER_PACKAGING_READ_LIMIT_BPS
    with_rendition = format_version >= RENDITION_FORMAT
    with _events_file(export, with_timeline=with_rendition) as events:
        payload = [
            PayloadFile.from_bytes("narrative.md", narrative.encode()),
            PayloadFile.from_bytes("approvals.json", approvals),
            PayloadFile.from_path("events.ndjson", events.path),
            *(_payload_for(plan, limit) for plan in plans),
            *(_signature_timestamp_files(record, timestamps_as_of) if with_rendition else []),
        ]
        spec = BundleSpec(
            name=bundle_name(export_id=export.pk, version=export.version),
            created_at=export.created_at,
            bag_info=bag_info_for(export, format_version=format_version),
            payload=payload,
            export_metadata=export_document_for(export),
            signer=signer_for(signing_key),
            compression=cast(Compression, compression),  # an unknown one is refused by the bundle engine
            derived=_rendition_file(export, record, plans, events, format_version) if with_rendition else None,
        )
        try:
            return build_bundle(spec, out)
        except BundleError as exc:
            raise PackagingFailure(exc.code, str(exc)) from exc
        except RenditionFailed as exc:
            raise PackagingFailure(exc.code, exc.message) from exc


def _signature_timestamp_files(record: ApprovalRecord, as_of: datetime | None) -> list[PayloadFile]:
    """Format 4: each signature record whose trusted timestamp was requested, as the exact bytes the token covers
    (``signature-records/<id>.json``), and its RFC 3161 reply (``<id>.tsr``) when granted by ``as_of`` — the stored
    rows replay reuses, so a rebuild carries the same files (docs/trusted-time.md)."""
    entries = record.document.get("signatures", [])  # the provider's document (exports/hooks.py)
    ids = [entry["id"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("id"), int)]
    if not ids:
        return []
    files = []
    for row in TrustedTimestamp.objects.filter(subject_type=TimestampSubject.SIGNATURE, subject_id__in=ids).order_by(
        "subject_id"
    ):
        files.append(PayloadFile.from_bytes(f"signature-records/{row.subject_id}.json", bytes(row.subject_bytes)))
        granted = row.status == TimestampStatus.GRANTED and row.granted_at is not None
        if granted and as_of is not None and row.granted_at <= as_of and row.response is not None:
            files.append(PayloadFile.from_bytes(f"signature-records/{row.subject_id}.tsr", bytes(row.response)))
    return files


def _rendition_file(
    export: NarrativeExport,
    record: ApprovalRecord,
    plans: list[AttachmentPlan],
    events: _EventsFile,
    format_version: int,
) -> DerivedPayloadFile:
    """``data/dossier.pdf`` (docs/exports.md, "The rendition"), rendered once the other payload files are hashed,
    so that it embeds their manifest."""
    assert events.timeline is not None  # collected with the events of a format that has the rendition
    inputs = rendition_inputs(
        export=export,
        record=record,
        plans=plans,
        timeline=events.timeline,
        events_sha256=events.sha256,
        format_version=format_version,
    )
    return DerivedPayloadFile(path="dossier.pdf", render=lambda manifest: rendition_render(inputs, manifest))


# --- Replay ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayResult:
    export_id: int
    version: int
    stored_sha256: str
    replayed_sha256: str
    size: int

    @property
    def identical(self) -> bool:
        return self.stored_sha256 == self.replayed_sha256


def _packaged_run_start(export: NarrativeExport):
    """When the run that published the artifact started: the cut-off of the signature timestamps it carried."""
    run = PackagingRun.objects.filter(export=export, status=PackagingRunStatus.SUCCEEDED).order_by("-started_at")
    return run.values_list("started_at", flat=True).first()


def export_replay(*, export: NarrativeExport, record: bool = True, actor=None) -> ReplayResult:
    """Re-package a packaged version (same key, compression and bundle format version) into a scratch file and
    compare digests.

    Nothing in storage changes. With ``record`` the outcome is written to the audit trail.
    """
    artifact = ExportArtifact.objects.select_related("signing_key").filter(export=export).first()
    if artifact is None:
        raise Conflict(
            f"Export {export.pk} has no artifact to compare with; queue it for packaging instead.",
            code="artifact_not_found",
        )
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as scratch:
        try:
            built = bundle_build(
                export=export,
                out=scratch,
                signing_key=artifact.signing_key,
                compression=artifact.compression,
                format_version=artifact.format_version,
                timestamps_as_of=_packaged_run_start(export),
            )
        except PackagingFailure as exc:
            raise Conflict(f"Export {export.pk} cannot be re-packaged: {exc.message}", code=exc.code) from exc
    result = ReplayResult(export.pk, export.version, artifact.sha256, built.sha256, built.size)
    if record:
        audit_record(
            action=EventType.EXPORT_REPLAYED,
            actor=actor,
            obj=export,
            team_id=export.execution.team_id,
            payload={"stored_sha256": result.stored_sha256, "replayed_sha256": result.replayed_sha256},
        )
    return result
