"""Retention: changing an export's retention date, and the run that purges what is due (docs/records-lifecycle.md).

Retention has two modes, as in object-lock stores: ``governance`` (compliance or an admin may shorten a date with
an explicit reason, audited) and ``compliance`` (nobody, superusers included, may shorten it; it can only be
extended). ``retention_enforce`` finds what is due, skips whatever a legal hold covers, deletes the bytes from
storage, writes a tombstone per purged object, records the step and moves a purged bundle's export to
``expired``. From then on downloads answer 410 ``artifact_expired``; until then they keep working.

A run works in batches with a fixed number of queries per batch whatever its size: one select that locks the
batch, the deletes in storage, one update, one insert of tombstones and the batched lifecycle records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from exports.choices import EvidenceKind, ExportStatus, RetentionCategory, RetentionMode, RetentionRule
from exports.events import EventType
from exports.models import Evidence, ExportArtifact, NarrativeExport, RetentionTombstone
from exports.permissions import RETENTION_MANAGERS, require_team_role
from exports.selectors.holds import evidence_held_q, export_held_q
from exports.services.lifecycle import (
    ExecutionStep,
    LifecycleRecord,
    execution_steps_record_many,
    export_lifecycle_record,
    export_lifecycle_record_many,
)
from exports.services.transitions import export_transition_many
from exports.storage import artifact_storage, storage_errors_as_unavailable
from governance.services.jobs import JOB_SUCCEEDED, job_lock, job_run_record
from textpolicy.utc import utc_iso

RETENTION_JOB = "retention"
DEFAULT_BATCH_SIZE = 500


# --- Changing an export's retention date ---------------------------------------------------------------------


class RetentionLocked(Conflict):
    code = "retention_locked"
    default_message = "This retention date is in compliance mode: it can only be extended."


def _export_for_retention(*, actor, export_id: int) -> NarrativeExport:
    export = (
        NarrativeExport.objects.visible_to(actor)
        .select_for_update(of=("self",))
        .select_related("execution")
        .filter(pk=export_id)
        .first()
    )
    if export is None:
        raise NotFound(f"Export {export_id} was not found.", code="export_not_found")
    if not actor.is_superuser:
        require_team_role(
            user=actor, team_id=export.execution.team_id, roles=RETENTION_MANAGERS, action="change retention"
        )
    return export


def _require_retained(export: NarrativeExport) -> None:
    if export.status in (ExportStatus.EXPIRED, ExportStatus.ERASED):
        raise Conflict(
            f"Export {export.pk} is {export.status}: its records are already gone.",
            code="retention_ended",
            details={"export_id": export.pk, "status": export.status},
        )


@transaction.atomic
def export_retention_change(*, actor, export_id: int, retain_until: datetime, reason: str = "") -> NarrativeExport:
    """Move an export's (and its artifact's) ``retain_until``. Extending is always allowed; shortening needs a
    reason and is refused in ``compliance`` mode for everyone (409 ``retention_locked``). Records
    ``narrative_export.retention.extended`` or ``.shortened``; the same date changes nothing."""
    export = _export_for_retention(actor=actor, export_id=export_id)
    _require_retained(export)
    previous = export.retain_until
    if previous == retain_until:
        return export
    shortened = previous is None or retain_until < previous
    if shortened and export.retention_mode == RetentionMode.COMPLIANCE:
        raise RetentionLocked(
            f"Export {export.pk} is retained in compliance mode until {utc_iso(previous) if previous else 'ever'}; "
            "nobody may shorten it, only extend it.",
            details={"export_id": export.pk, "retain_until": utc_iso(previous) if previous else None},
        )
    if shortened and not reason.strip():
        raise ValidationFailed(
            "Shortening retention needs a reason.", details={"fields": {"reason": ["This field may not be blank."]}}
        )
    export.retain_until = retain_until
    export.save(update_fields=["retain_until", "updated_at"])
    ExportArtifact.objects.filter(export=export).update(retain_until=retain_until)
    export_lifecycle_record(
        export=export,
        event_type=EventType.RETENTION_SHORTENED if shortened else EventType.RETENTION_EXTENDED,
        actor=actor,
        payload={
            "retain_until": utc_iso(retain_until),
            "previous_retain_until": utc_iso(previous) if previous else None,
            "retention_mode": export.retention_mode,
            "reason": reason.strip(),
        },
    )
    return export


# --- What is due ---------------------------------------------------------------------------------------------


def _superseded_export_ids() -> QuerySet[NarrativeExport, dict[str, Any]]:
    """Exports older than the newest ``retention_keep_versions`` versions of their execution (a null keep-count
    compares as unknown, so exports without the rule never match)."""
    with_rule = NarrativeExport.objects.filter(retention_keep_versions__isnull=False).values("execution_id")
    ranked = NarrativeExport.objects.filter(execution_id__in=with_rule).annotate(  # every version of those executions
        newer=Window(RowNumber(), partition_by=[F("execution_id")], order_by=F("version").desc())
    )
    return ranked.filter(newer__gt=F("retention_keep_versions")).values("pk")


def artifacts_due(now: datetime) -> QuerySet[ExportArtifact]:
    """Artifacts whose bytes are still stored and which a rule makes due, held or not, annotated with the rule.
    Keep-versions makes an older version due at once in governance mode, and never before its own date in
    compliance mode (where its date is the rule that applies)."""
    by_date = Q(retain_until__lte=now)
    by_versions = Q(retention_mode=RetentionMode.GOVERNANCE, export_id__in=_superseded_export_ids())
    return (
        ExportArtifact.objects.filter(expired_at__isnull=True)
        .exclude(export__status=ExportStatus.ERASED)
        .filter(by_date | by_versions)
        .annotate(
            rule=Case(When(by_date, then=Value(RetentionRule.RETAIN_UNTIL)), default=Value(RetentionRule.KEEP_VERSIONS))
        )
    )


def evidence_due(now: datetime) -> QuerySet[Evidence]:
    """Stored evidence files past their ``retain_until``, held or not."""
    return (
        Evidence.objects.filter(kind=EvidenceKind.FILE, purged_at__isnull=True, retain_until__lte=now)
        .exclude(storage_path="")
        .annotate(rule=Value(RetentionRule.RETAIN_UNTIL))
    )


def _unheld_artifacts(now: datetime) -> QuerySet[ExportArtifact]:
    return artifacts_due(now).exclude(export_held_q(export="export", team="export__execution__team"))


def _unheld_evidence(now: datetime) -> QuerySet[Evidence]:
    return evidence_due(now).exclude(evidence_held_q())


# --- The run -------------------------------------------------------------------------------------------------


@dataclass
class CategoryCounts:
    due: int = 0
    held: int = 0
    purged: int = 0
    bytes: int = 0


@dataclass
class RetentionReport:
    dry_run: bool
    started_at: datetime
    categories: dict[str, CategoryCounts] = field(
        default_factory=lambda: {category: CategoryCounts() for category in RetentionCategory.values}
    )
    batches: int = 0
    queries: int = 0
    max_batch_queries: int = 0

    @property
    def purged(self) -> int:
        return sum(counts.purged for counts in self.categories.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "categories": {name: vars(counts) for name, counts in self.categories.items()},
            "batches": self.batches,
            "queries": self.queries,
            "max_batch_queries": self.max_batch_queries,
        }

    def lines(self) -> list[str]:
        verb = "would purge" if self.dry_run else "purged"
        rows = [
            f"{name}: due {counts.due}, held {counts.held}, {verb} {counts.purged} ({counts.bytes} bytes)"
            for name, counts in self.categories.items()
        ]
        rows.append(f"batches {self.batches}, queries {self.queries} (at most {self.max_batch_queries} per batch)")
        return rows


@contextmanager
def _counting(report: RetentionReport, *, batch: bool = True) -> Iterator[None]:
    counter = {"n": 0}

    def count(execute, sql, params, many, context):
        counter["n"] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield
    report.queries += counter["n"]
    if batch:
        report.max_batch_queries = max(report.max_batch_queries, counter["n"])


def _tombstone(item: ExportArtifact | Evidence, *, team_id: int, now: datetime) -> RetentionTombstone:
    artifact = item if isinstance(item, ExportArtifact) else None
    return RetentionTombstone(
        team_id=team_id,
        category=RetentionCategory.ARTIFACT if artifact is not None else RetentionCategory.EVIDENCE,
        rule=_rule(item),
        export_id=artifact.export_id if artifact is not None else None,
        artifact=artifact,
        evidence=item if isinstance(item, Evidence) else None,
        storage_path=item.storage_path,
        sha256=item.sha256,
        size=item.size,
        retain_until=item.retain_until,
        retention_mode=item.retention_mode,
        purged_at=now,
    )


def _rule(item: ExportArtifact | Evidence) -> str:
    return getattr(item, "rule", RetentionRule.RETAIN_UNTIL)  # annotated by the selection


def _purge_payload(item: ExportArtifact | Evidence) -> dict[str, Any]:
    return {
        "sha256": item.sha256,
        "size": item.size,
        "rule": _rule(item),
        "retain_until": utc_iso(item.retain_until) if item.retain_until else None,
        "retention_mode": item.retention_mode,
    }


def _bytes_delete(items: list) -> None:
    """Delete the stored objects; a missing one is already gone. Raises StorageUnavailable for the batch to roll
    back (its rows stay due, and the next run deletes again)."""
    storage = artifact_storage()
    with storage_errors_as_unavailable("purging retained objects"):
        for item in items:
            storage.delete(item.storage_path)


def _artifact_batch_purge(batch: list[ExportArtifact], *, now: datetime) -> None:
    _bytes_delete(batch)
    ExportArtifact.objects.filter(pk__in=[a.pk for a in batch]).update(expired_at=now)
    RetentionTombstone.objects.bulk_create(_tombstone(a, team_id=a.export.execution.team_id, now=now) for a in batch)
    payloads = {a.export_id: {"artifact_id": a.pk, **_purge_payload(a)} for a in batch}
    packaged = [a.export for a in batch if a.export.status == ExportStatus.PACKAGED]
    others = [a.export for a in batch if a.export.status != ExportStatus.PACKAGED]
    export_transition_many(
        exports=packaged, to=ExportStatus.EXPIRED, event_type=EventType.RETENTION_PURGED, payloads=payloads
    )
    export_lifecycle_record_many(  # an artifact whose export left ``packaged`` some other way: bytes go all the same
        [LifecycleRecord(export=e, event_type=EventType.RETENTION_PURGED, payload=payloads[e.pk]) for e in others]
    )


def _evidence_batch_purge(batch: list[Evidence], *, now: datetime) -> None:
    _bytes_delete(batch)
    Evidence.objects.filter(pk__in=[e.pk for e in batch]).update(purged_at=now)
    RetentionTombstone.objects.bulk_create(_tombstone(e, team_id=e.execution.team_id, now=now) for e in batch)
    execution_steps_record_many(
        [
            ExecutionStep(
                execution_id=e.execution_id,
                event_type=EventType.EVIDENCE_PURGED,
                audit_obj=e,
                payload={"evidence_id": e.pk, **_purge_payload(e)},
            )
            for e in batch
        ]
    )


def _batches(
    select: Callable[[], list], purge: Callable[..., None], *, counts: CategoryCounts, report: RetentionReport
) -> None:
    """Lock a batch, purge it and commit, until nothing unheld is due. Rows another run holds are skipped."""
    while True:
        with _counting(report), transaction.atomic():
            now = timezone.now()
            batch = select()
            if not batch:
                return
            purge(batch, now=now)
        report.batches += 1
        counts.purged += len(batch)
        counts.bytes += sum(item.size for item in batch)


def _artifact_batch(now: datetime, size: int) -> Callable[[], list[ExportArtifact]]:
    def select() -> list[ExportArtifact]:
        return list(
            _unheld_artifacts(now)
            .select_for_update(of=("self", "export"), skip_locked=True)
            .select_related("export__execution")
            .order_by("pk")[:size]
        )

    return select


def _evidence_batch(now: datetime, size: int) -> Callable[[], list[Evidence]]:
    def select() -> list[Evidence]:
        return list(
            _unheld_evidence(now)
            .select_for_update(of=("self",), skip_locked=True)
            .select_related("execution")
            .order_by("pk")[:size]
        )

    return select


def _count_due(report: RetentionReport, now: datetime) -> None:
    artifacts, evidence = report.categories[RetentionCategory.ARTIFACT], report.categories[RetentionCategory.EVIDENCE]
    artifacts.due, evidence.due = artifacts_due(now).count(), evidence_due(now).count()
    unheld_artifacts, unheld_evidence = _unheld_artifacts(now), _unheld_evidence(now)
    artifact_sizes = [size for (size,) in unheld_artifacts.values_list("size")] if report.dry_run else []
    evidence_sizes = [size for (size,) in unheld_evidence.values_list("size")] if report.dry_run else []
    artifacts.held = artifacts.due - (len(artifact_sizes) if report.dry_run else unheld_artifacts.count())
    evidence.held = evidence.due - (len(evidence_sizes) if report.dry_run else unheld_evidence.count())
    if report.dry_run:
        artifacts.purged, artifacts.bytes = len(artifact_sizes), sum(artifact_sizes)
        evidence.purged, evidence.bytes = len(evidence_sizes), sum(evidence_sizes)


def retention_enforce(
    *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, now: datetime | None = None
) -> RetentionReport:
    """Purge what retention makes due and no hold covers; the report counts, per category, what was due, what a
    hold kept and what was purged (``dry_run``: what would be, with nothing changed)."""
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run, started_at=now)
    with _counting(report, batch=False):
        _count_due(report, now)
    if dry_run:
        return report
    _batches(
        _artifact_batch(now, batch_size),
        _artifact_batch_purge,
        counts=report.categories[RetentionCategory.ARTIFACT],
        report=report,
    )
    _batches(
        _evidence_batch(now, batch_size),
        _evidence_batch_purge,
        counts=report.categories[RetentionCategory.EVIDENCE],
        report=report,
    )
    return report


class RetentionRunning(Conflict):
    code = "retention_running"
    default_message = "Another retention run is in progress."


def retention_run_recorded(*, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> RetentionReport:
    """The operators' run (daily schedule, ``manage.py enforce_retention``): one at a time (a PostgreSQL advisory
    lock; a second run is refused), its outcome kept as the ``retention`` job for ``/metrics`` (a dry run
    records nothing)."""
    started = timezone.now()
    with job_lock(RETENTION_JOB) as held:
        if not held:
            raise RetentionRunning()
        try:
            report = retention_enforce(dry_run=dry_run, batch_size=batch_size)
        except Exception as exc:
            if not dry_run:
                job_run_record(job=RETENTION_JOB, started_at=started, outcome="failed", details={"error": str(exc)})
            raise
        if not dry_run:
            job_run_record(
                job=RETENTION_JOB,
                started_at=started,
                outcome=JOB_SUCCEEDED,
                rows=report.purged,
                details=report.as_json(),
            )
    return report
