"""Storage tiers (docs/storage-tiers-and-fixity.md): stored objects move ``hot`` → ``warm`` → ``cold`` by age.

On S3 a tier is a storage class of the same key (STANDARD → STANDARD_IA → GLACIER_IR, all readable at once): the
object is copied onto itself with the new class. On the filesystem a tier is a root of its own: the object is
copied to ``.tiers/<tier>/<name>`` (under ``DOSSIER_TIER_ROOTS[tier]`` when set), and the row follows.

A move never changes a byte: the copy is re-hashed and compared with ``stored_sha256`` before the row points at it
and before the source is deleted (after commit). Objects without a recorded ``stored_sha256`` are left where they
are until ``verify_artifacts --record-missing`` has recorded it. Each move is recorded as
``narrative_export.storage.tier_changed`` on the execution's timeline and the audit trail.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from exports.choices import StorageTier
from exports.events import EventType
from exports.models import Evidence, Execution, ExportArtifact
from exports.services.executions import execution_event_record
from exports.services.lifecycle import export_lifecycle_record
from exports.storage import (
    READ_CHUNK,
    TIER_PREFIX,
    ArtifactMissing,
    StorageUnavailable,
    artifact_storage,
    hash_stream,
    storage_errors_as_unavailable,
    storage_open_raw,
)
from governance.services.jobs import JOB_SUCCEEDED, job_lock, job_run_record

TIER_ORDER: dict[str, int] = {StorageTier.HOT: 0, StorageTier.WARM: 1, StorageTier.COLD: 2}
ARTIFACT, EVIDENCE = "artifact", "evidence"
MOVED, FAILED, UNRECORDED, SKIPPED = "moved", "failed", "unrecorded", "skipped"
LIFECYCLE_JOB = "storage_lifecycle"
MOVE_COLUMNS = ("pk", "storage_path", "stored_sha256", "size", "storage_tier", "created_at")


class TierMoveFailed(Exception):
    pass


@dataclass(frozen=True)
class TierMove:
    kind: str
    pk: int
    name: str
    stored_sha256: str
    size: int
    from_tier: str
    to_tier: str
    execution_id: int
    export_id: int | None = None


@dataclass
class LifecycleReport:
    started_at: datetime
    dry_run: bool
    planned: list[TierMove] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[TierMove, str]] = field(default_factory=list)

    def add(self, move: TierMove, outcome: str, reason: str = "") -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome == FAILED:
            self.failures.append((move, reason))

    def per_move(self) -> dict[tuple[str, str, str], int]:
        counts: dict[tuple[str, str, str], int] = {}
        for move in self.planned:
            key = (move.kind, move.from_tier, move.to_tier)
            counts[key] = counts.get(key, 0) + 1
        return counts


# --- What is due ------------------------------------------------------------------------------------------------


def tier_due(*, created_at: datetime, now: datetime) -> str:
    """The coldest tier whose age threshold (``DOSSIER_STORAGE_TIERS``, days) the object has reached."""
    due: str = StorageTier.HOT
    for tier in (StorageTier.WARM, StorageTier.COLD):
        days = settings.DOSSIER_STORAGE_TIERS.get(tier)
        if days is not None and created_at <= now - timedelta(days=days):
            due = tier
    return due


def _youngest_threshold(now: datetime) -> datetime | None:
    days = [value for value in settings.DOSSIER_STORAGE_TIERS.values() if value is not None]
    return now - timedelta(days=min(days)) if days else None


def tier_moves_planned(*, now: datetime | None = None) -> list[TierMove]:
    """Every stored object older than its tier allows, oldest first; objects only ever move colder."""
    now = now or timezone.now()
    threshold = _youngest_threshold(now)
    if threshold is None:
        return []
    not_cold = ~Q(storage_tier=StorageTier.COLD) & Q(created_at__lte=threshold)
    artifacts = (
        ExportArtifact.objects.filter(not_cold, expired_at__isnull=True)
        .order_by("created_at", "pk")
        .values_list(
            "pk",
            "storage_path",
            "stored_sha256",
            "size",
            "storage_tier",
            "created_at",
            "export__execution_id",
            "export_id",
        )
    )
    evidence = (
        Evidence.objects.filter(not_cold, purged_at__isnull=True)
        .exclude(storage_path="")
        .order_by("created_at", "pk")
        .values_list(*MOVE_COLUMNS, "execution_id")
    )
    moves = []
    for kind, rows in ((ARTIFACT, artifacts), (EVIDENCE, evidence)):
        for pk, name, stored, size, tier, created_at, execution_id, *export_id in rows.iterator():
            due = tier_due(created_at=created_at, now=now)
            if TIER_ORDER[due] > TIER_ORDER[tier]:
                moves.append(TierMove(kind, pk, name, stored, size, tier, due, execution_id, *export_id))
    return moves


# --- Moving one object ------------------------------------------------------------------------------------------


def tier_name(name: str, tier: str) -> str:
    """The filesystem name of ``name`` in ``tier``: ``.tiers/<tier>/<name>`` (hot: the name itself)."""
    if name.startswith(TIER_PREFIX):
        name = name[len(TIER_PREFIX) :].partition("/")[2]
    return name if tier == StorageTier.HOT else f"{TIER_PREFIX}{tier}/{name}"


def _stored_digest(name: str, storage: Storage) -> str:
    handle = storage_open_raw(name, storage)
    try:
        with storage_errors_as_unavailable(f"reading {name}"):
            return hash_stream(handle)[0]
    finally:
        handle.close()


def _copy_file(source: str, target: str, mode: int | None) -> None:
    """Copy ``source`` to ``target`` in one step (a temporary file in the target directory, fsynced, renamed)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tier-", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb", buffering=0) as src:
            while chunk := src.read(READ_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _filesystem_copy(move: TierMove, storage: FileSystemStorage) -> str:
    """Copy the object into its new tier's root and check the copy; returns its new name."""
    target_name = tier_name(move.name, move.to_tier)
    source, target = storage.path(move.name), storage.path(target_name)
    with storage_errors_as_unavailable(f"copying {move.name}"):
        if not os.path.exists(source):
            raise ArtifactMissing(move.name)
        _copy_file(source, target, storage.file_permissions_mode)
    if _stored_digest(target_name, storage) != move.stored_sha256:
        os.unlink(target)
        raise TierMoveFailed(f"the copy in {move.to_tier} does not hash to stored_sha256; the object stays")
    return target_name


def _object_store_copy(move: TierMove, storage: Any) -> str:
    """Copy the S3 object onto itself with the tier's storage class, then check its bytes and class."""
    storage_class = settings.DOSSIER_S3_TIER_STORAGE_CLASSES[move.to_tier]
    key = storage._normalize_name(move.name)
    client = storage.connection.meta.client
    with storage_errors_as_unavailable(f"moving {move.name} to {storage_class}"):
        client.copy(
            {"Bucket": storage.bucket_name, "Key": key},
            storage.bucket_name,
            key,
            ExtraArgs={"StorageClass": storage_class, "MetadataDirective": "COPY"},
        )
        head = client.head_object(Bucket=storage.bucket_name, Key=key)
    if head.get("StorageClass", "STANDARD") != storage_class:
        raise TierMoveFailed(f"the object's storage class is {head.get('StorageClass')}, not {storage_class}")
    if _stored_digest(move.name, storage) != move.stored_sha256:
        raise TierMoveFailed(f"after the copy to {storage_class} the object does not hash to stored_sha256")
    return move.name


def _is_object_store(storage: Storage) -> bool:
    return getattr(storage, "bucket_name", None) is not None and hasattr(storage, "connection")


def _payload(move: TierMove) -> dict[str, Any]:
    return {
        "object": move.kind,
        f"{move.kind}_id": move.pk,
        "from_tier": move.from_tier,
        "to_tier": move.to_tier,
        "stored_sha256": move.stored_sha256,
        "size": move.size,
    }


@transaction.atomic
def _tier_record(move: TierMove, new_name: str) -> bool:
    """Point the row at the moved object and record the move; False when the row changed meanwhile."""
    model = ExportArtifact if move.kind == ARTIFACT else Evidence
    row = model.objects.select_for_update().filter(pk=move.pk).first()
    if row is None or row.storage_path != move.name or row.storage_tier != move.from_tier:
        return False
    if isinstance(row, ExportArtifact) and row.expired_at is not None:
        return False
    model.objects.filter(pk=move.pk).update(storage_path=new_name, storage_tier=move.to_tier)
    if isinstance(row, ExportArtifact):
        artifact = ExportArtifact.objects.select_related("export__execution").get(pk=move.pk)
        export_lifecycle_record(
            export=artifact.export, event_type=EventType.STORAGE_TIER_CHANGED, payload=_payload(move)
        )
    else:
        execution_event_record(
            execution=Execution.objects.get(pk=move.execution_id),
            actor=None,
            event_type=EventType.STORAGE_TIER_CHANGED,
            payload=_payload(move),
        )
    return True


def tier_move(move: TierMove, storage: Storage | None = None) -> str:
    """Move one object to its new tier; the source (filesystem) is deleted only after the row points at the copy."""
    storage = storage or artifact_storage()
    if not move.stored_sha256:
        return UNRECORDED
    if _is_object_store(storage):
        new_name = _object_store_copy(move, storage)
    elif isinstance(storage, FileSystemStorage):
        new_name = _filesystem_copy(move, storage)
    else:
        raise TierMoveFailed(f"storage tiers are not supported on {type(storage).__name__}")
    try:
        recorded = _tier_record(move, new_name)
    except BaseException:
        if new_name != move.name:
            storage.delete(new_name)
        raise
    if new_name != move.name:
        if recorded:
            transaction.on_commit(lambda: storage.delete(move.name))
        else:
            storage.delete(new_name)
    return MOVED if recorded else SKIPPED


# --- A run ------------------------------------------------------------------------------------------------------

Progress = Callable[[int, int, TierMove, str], None]


def storage_lifecycle_run(*, dry_run: bool = False, progress: Progress | None = None) -> LifecycleReport:
    """Move every object that is due (or, with ``dry_run``, only say which would move)."""
    report = LifecycleReport(started_at=timezone.now(), dry_run=dry_run, planned=tier_moves_planned())
    if dry_run:
        return report
    storage = artifact_storage()
    for index, move in enumerate(report.planned, start=1):
        try:
            outcome, reason = tier_move(move, storage), ""
        except ArtifactMissing:
            outcome, reason = FAILED, "missing from storage"
        except (TierMoveFailed, StorageUnavailable) as exc:
            outcome, reason = FAILED, str(exc)
        report.add(move, outcome, reason)
        if progress is not None:
            progress(index, len(report.planned), move, outcome)
    return report


class LifecycleBusy(Exception):
    pass


def storage_lifecycle_recorded(*, dry_run: bool = False, progress: Progress | None = None) -> LifecycleReport:
    """A run under the job lock; a real run is kept as the job's latest run."""
    with job_lock(LIFECYCLE_JOB) as held:
        if not held:
            raise LifecycleBusy("another storage_lifecycle run is in progress")
        report = storage_lifecycle_run(dry_run=dry_run, progress=progress)
        if not dry_run:
            job_run_record(
                job=LIFECYCLE_JOB,
                started_at=report.started_at,
                outcome=JOB_SUCCEEDED if not report.failures else "failed",
                rows=report.outcomes.get(MOVED, 0),
                details={"outcomes": report.outcomes},
            )
    return report


def stored_bytes_per_tier() -> dict[str, dict[str, int]]:
    """Objects and bytes per tier and kind (``storage_lifecycle --summary``)."""
    summary: dict[str, dict[str, int]] = {}
    for kind, queryset in (
        (ARTIFACT, ExportArtifact.objects.filter(expired_at__isnull=True)),
        (EVIDENCE, Evidence.objects.filter(purged_at__isnull=True).exclude(storage_path="")),
    ):
        for row in queryset.values("storage_tier").annotate(total=Sum("size")).order_by("storage_tier"):
            summary.setdefault(row["storage_tier"], {})[kind] = row["total"] or 0
    return summary
