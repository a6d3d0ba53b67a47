"""Fixity checks of stored objects (docs/storage-tiers-and-fixity.md): every artifact and evidence file is re-hashed
as stored and compared with the ``stored_sha256`` recorded when it was written, oldest-checked first.

Each result is stored on the object (``fixity_checked_at``, ``fixity_status``). A failure (changed bytes, a missing
object, or with ``deep`` a plaintext that does not open or does not hash to the row's ``sha256``) sets the
artifact's ``integrity_failed_at``, writes ``narrative_export.artifact.integrity_failed`` to the execution's
timeline and the audit trail (``/metrics``: ``dossier_artifact_integrity_failures_total``), appends a verification
outcome with source ``fixity`` (``dossier_verify_failures_total{source="fixity"}``) and, after commit, one JSON line
to ``problems/fixity.log``. Objects stored before ``stored_sha256`` existed are checked through their plaintext and,
with ``record_missing``, get it recorded once that check passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from exports.choices import FixityStatus
from exports.crypto import DecryptionFailed
from exports.events import EventType
from exports.models import Evidence, Execution, ExportArtifact
from exports.services.executions import execution_event_record
from exports.services.lifecycle import export_lifecycle_record
from exports.services.verification import SOURCE_FIXITY, verification_record
from exports.storage import (
    READ_CHUNK,
    ArtifactMissing,
    HashingReader,
    StorageUnavailable,
    artifact_storage,
    hash_stream,
    plaintext_stream,
    storage_encrypts,
    storage_errors_as_unavailable,
    storage_open_raw,
)
from governance.services.jobs import JOB_SUCCEEDED, job_lock, job_run_record
from textpolicy.utc import utc_iso

FIXITY_LOG = "fixity.log"
ARTIFACT, EVIDENCE = "artifact", "evidence"

# Outcomes. The first three keep an object intact; the rest are failures.
INTACT = "intact"
UNRECORDED = "unrecorded"  # no stored_sha256 yet; its plaintext matched the row's sha256
RECORDED = "recorded"  # as UNRECORDED, and stored_sha256 was recorded now
STORED_MISMATCH = "stored_digest_mismatch"
PLAINTEXT_MISMATCH = "plaintext_digest_mismatch"
DECRYPTION_FAILED = "decryption_failed"
MISSING = "missing"
PASSING = frozenset({INTACT, UNRECORDED, RECORDED})
BATCH = 500


@dataclass(frozen=True)
class FixityTarget:
    kind: str
    pk: int
    name: str
    sha256: str
    stored_sha256: str
    checked_at: datetime | None
    execution_id: int
    export_id: int | None = None


@dataclass(frozen=True)
class FixityResult:
    target: FixityTarget
    outcome: str
    actual_stored_sha256: str = ""
    actual_sha256: str = ""
    size: int = 0
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome not in PASSING

    def problem_line(self, checked_at: datetime) -> dict[str, Any]:
        target = self.target
        return {
            "checked_at": utc_iso(checked_at),
            "object": target.kind,
            "id": target.pk,
            "export_id": target.export_id,
            "execution_id": target.execution_id,
            "storage_path": target.name,
            "outcome": self.outcome,
            "expected_stored_sha256": target.stored_sha256,
            "actual_stored_sha256": self.actual_stored_sha256,
            "expected_sha256": target.sha256,
            "actual_sha256": self.actual_sha256,
            "detail": self.detail,
        }


@dataclass
class FixityReport:
    started_at: datetime
    deep: bool
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[FixityResult] = field(default_factory=list)
    errors: list[tuple[FixityTarget, str]] = field(default_factory=list)
    bytes_read: int = 0

    def add(self, result: FixityResult) -> None:
        self.counts[result.outcome] = self.counts.get(result.outcome, 0) + 1
        self.bytes_read += result.size
        if result.failed:
            self.failures.append(result)

    @property
    def checked(self) -> int:
        return sum(self.counts.values())


Progress = Callable[[int, int, FixityResult | None], None]


# --- Which objects, in which order ------------------------------------------------------------------------------


def _oldest_checked_first(queryset):
    return queryset.order_by(F("fixity_checked_at").asc(nulls_first=True), "pk")


def fixity_targets(*, sample: int | None = None) -> list[FixityTarget]:
    """The stored objects to check: never-checked ones first, then the longest unchecked; ``sample`` of them."""
    artifacts = _oldest_checked_first(ExportArtifact.objects.filter(expired_at__isnull=True)).values_list(
        "pk", "storage_path", "sha256", "stored_sha256", "fixity_checked_at", "export__execution_id", "export_id"
    )
    evidence = _oldest_checked_first(
        Evidence.objects.filter(purged_at__isnull=True).exclude(storage_path="")
    ).values_list("pk", "storage_path", "sha256", "stored_sha256", "fixity_checked_at", "execution_id")
    if sample is not None:
        artifacts, evidence = artifacts[:sample], evidence[:sample]
    targets = [FixityTarget(ARTIFACT, *row) for row in artifacts] + [FixityTarget(EVIDENCE, *row) for row in evidence]
    targets.sort(key=lambda t: (t.checked_at is not None, t.checked_at.timestamp() if t.checked_at else 0.0, t.pk))
    return targets[:sample] if sample is not None else targets


# --- Checking one object ----------------------------------------------------------------------------------------


def _digests_of(raw: BinaryIO, name: str, storage, *, deep: bool) -> tuple[str, str, int]:
    with storage_errors_as_unavailable(f"reading {name}"):
        if not deep:
            stored, size = hash_stream(raw)
            return stored, "", size
        hashed = HashingReader(raw)
        readable = cast(BinaryIO, hashed)
        plain, _ = hash_stream(plaintext_stream(readable) if storage_encrypts(storage) else readable)
        while hashed.read(READ_CHUNK):  # bytes after the end of the plaintext are part of what is stored
            pass
        return hashed.hexdigest(), plain, hashed.size


def _digests(name: str, storage, *, deep: bool) -> tuple[str, str, int]:
    """(sha256 of the stored bytes, sha256 of the plaintext or "" unless ``deep``, stored size), in one read."""
    raw = storage_open_raw(name, storage)
    try:
        return _digests_of(raw, name, storage, deep=deep)
    finally:
        raw.close()


def fixity_check_one(
    target: FixityTarget, storage, *, deep: bool = False, record_missing: bool = False
) -> FixityResult:
    """Re-hash one stored object; ``StorageUnavailable`` (a fault that may heal) propagates."""
    unrecorded = not target.stored_sha256
    try:
        stored, plain, size = _digests(target.name, storage, deep=deep or unrecorded)
    except ArtifactMissing:
        return FixityResult(target, MISSING, detail="missing from storage")
    except DecryptionFailed as exc:
        return FixityResult(target, DECRYPTION_FAILED, detail=exc.message)
    if not unrecorded and stored != target.stored_sha256:
        outcome = STORED_MISMATCH
    elif plain and plain != target.sha256:
        outcome = PLAINTEXT_MISMATCH
    elif unrecorded:
        outcome = RECORDED if record_missing else UNRECORDED
    else:
        outcome = INTACT
    return FixityResult(target, outcome, actual_stored_sha256=stored, actual_sha256=plain, size=size)


# --- Recording results ------------------------------------------------------------------------------------------


def _model(kind: str):
    return ExportArtifact if kind == ARTIFACT else Evidence


def _passed_record(results: list[FixityResult], checked_at: datetime) -> None:
    """Store the outcome of objects that passed: one statement per kind, plus one per newly recorded digest."""
    for kind in (ARTIFACT, EVIDENCE):
        pks = [result.target.pk for result in results if result.target.kind == kind]
        if pks:
            _model(kind).objects.filter(pk__in=pks).update(
                fixity_checked_at=checked_at, fixity_status=FixityStatus.INTACT
            )
    for result in results:
        if result.outcome == RECORDED:
            _model(result.target.kind).objects.filter(pk=result.target.pk, stored_sha256="").update(
                stored_sha256=result.actual_stored_sha256
            )


def _failure_payload(result: FixityResult) -> dict[str, Any]:
    target = result.target
    return {
        "object": target.kind,
        f"{target.kind}_id": target.pk,
        "source": SOURCE_FIXITY,
        "outcome": result.outcome,
        "expected_stored_sha256": target.stored_sha256,
        "actual_stored_sha256": result.actual_stored_sha256,
        "expected_sha256": target.sha256,
        "actual_sha256": result.actual_sha256,
    }


@transaction.atomic
def fixity_failure_record(result: FixityResult, *, checked_at: datetime) -> None:
    """Mark the object failed, record the event and the verification outcome; the log line follows the commit."""
    target = result.target
    _model(target.kind).objects.filter(pk=target.pk).update(
        fixity_checked_at=checked_at, fixity_status=FixityStatus.FAILED
    )
    if target.kind == ARTIFACT:
        artifact = ExportArtifact.objects.select_related("export__execution").get(pk=target.pk)
        if artifact.integrity_failed_at is None:
            ExportArtifact.objects.filter(pk=target.pk).update(integrity_failed_at=checked_at)
        export = artifact.export
        export_lifecycle_record(
            export=export, event_type=EventType.ARTIFACT_INTEGRITY_FAILED, payload=_failure_payload(result)
        )
    else:
        export = None
        execution = Execution.objects.get(pk=target.execution_id)
        execution_event_record(
            execution=execution,
            actor=None,
            event_type=EventType.ARTIFACT_INTEGRITY_FAILED,
            payload=_failure_payload(result),
        )
    verification_record(
        source=SOURCE_FIXITY,
        ok=False,
        problem_codes=[result.outcome],
        export=export,
        archive_sha256=result.actual_sha256 or result.actual_stored_sha256,
    )
    line = result.problem_line(checked_at)
    transaction.on_commit(lambda: fixity_log_append([line]))


def fixity_log_append(lines: list[dict[str, Any]]) -> None:
    path = Path(settings.PROBLEMS_DIR) / FIXITY_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, sort_keys=True, default=str) + "\n")


# --- A run ------------------------------------------------------------------------------------------------------


def _target_now(target: FixityTarget) -> FixityTarget:
    """The target as its row says now (a storage tier move may have renamed it since the run began)."""
    row = _model(target.kind).objects.filter(pk=target.pk).values_list("storage_path", "stored_sha256").first()
    if row is None:
        return target
    return replace(target, name=row[0], stored_sha256=row[1])


def _checked(target: FixityTarget, storage, *, deep: bool, record_missing: bool) -> FixityResult:
    result = fixity_check_one(target, storage, deep=deep, record_missing=record_missing)
    if result.failed:  # a failure is confirmed against the row as it is now, not as it was when the run began
        current = _target_now(target)
        if current != target:
            return fixity_check_one(current, storage, deep=deep, record_missing=record_missing)
    return result


def _results(
    targets: list[FixityTarget], report: FixityReport, *, deep: bool, record_missing: bool, progress: Progress | None
) -> Iterator[FixityResult]:
    storage = artifact_storage()
    for index, target in enumerate(targets, start=1):
        try:
            result = _checked(target, storage, deep=deep, record_missing=record_missing)
        except StorageUnavailable as exc:
            report.errors.append((target, str(exc)))
            if progress is not None:
                progress(index, len(targets), None)
            continue
        report.add(result)
        if progress is not None:
            progress(index, len(targets), result)
        yield result


def artifacts_fixity_verify(
    *,
    sample: int | None = None,
    deep: bool = False,
    record_missing: bool = False,
    progress: Progress | None = None,
) -> FixityReport:
    """Check ``sample`` stored objects (all when None), oldest-checked first, and record every result."""
    report = FixityReport(started_at=timezone.now(), deep=deep)
    targets = fixity_targets(sample=sample)
    passed: list[FixityResult] = []
    for result in _results(targets, report, deep=deep, record_missing=record_missing, progress=progress):
        checked_at = timezone.now()
        if result.failed:
            fixity_failure_record(result, checked_at=checked_at)
            continue
        passed.append(result)
        if len(passed) >= BATCH:
            _passed_record(passed, checked_at)
            passed = []
    if passed:
        _passed_record(passed, timezone.now())
    return report


FIXITY_JOB = "fixity"


class FixityRunBusy(Exception):
    """Another fixity run holds the job lock."""


def fixity_run_recorded(
    *, sample: int | None = None, deep: bool = False, record_missing: bool = False, progress: Progress | None = None
) -> FixityReport:
    """A fixity run under the job lock (two runs never overlap), its outcome kept as the job's latest run."""
    with job_lock(FIXITY_JOB) as held:
        if not held:
            raise FixityRunBusy("another fixity run is in progress")
        report = artifacts_fixity_verify(sample=sample, deep=deep, record_missing=record_missing, progress=progress)
        outcome = JOB_SUCCEEDED if not report.failures and not report.errors else "failed"
        job_run_record(
            job=FIXITY_JOB,
            started_at=report.started_at,
            outcome=outcome,
            rows=report.checked,
            details={"counts": report.counts, "errors": len(report.errors), "deep": deep},
        )
    return report
