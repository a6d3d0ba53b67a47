"""Reads for narrative exports, their artifacts, packaging runs and signing keys, restricted to the viewer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from config.errors import NotFound
from exports.choices import ExportStatus, PackagingRunStatus
from exports.hooks import export_representation_hooks
from exports.models import Execution, ExecutionEvent, ExportArtifact, NarrativeExport, PackagingRun, SigningKey

RECENT_RUNS = 25


def _with_relations(queryset: QuerySet[NarrativeExport]) -> QuerySet[NarrativeExport]:
    return queryset.select_related("author", "template_snapshot", "artifact__signing_key").prefetch_related(
        "attachments"
    )


def exports_for_execution(*, execution: Execution) -> QuerySet[NarrativeExport]:
    """Every version of an execution's dossier, newest first (the execution is already visible to the viewer)."""
    return _with_relations(NarrativeExport.objects.filter(execution=execution)).order_by("-version")


def export_get_for_user(*, user, execution_id: int, export_id: int) -> NarrativeExport:
    export = (
        _with_relations(NarrativeExport.objects.visible_to(user))
        .select_related("execution__team")
        .filter(pk=export_id, execution_id=execution_id)
        .first()
    )
    if export is None:
        raise NotFound(f"Export {export_id} of execution {execution_id} was not found.", code="export_not_found")
    return export


def export_artifact(export: NarrativeExport) -> ExportArtifact | None:
    try:
        return export.artifact
    except ExportArtifact.DoesNotExist:
        return None


def export_representations(exports: Sequence[NarrativeExport]) -> dict[int, dict[str, Any]]:
    """Extra API fields for a page of exports from the representation hooks (one batched call per hook).
    ``ladder`` is always present: ``None`` until a hook (approvals) supplies it."""
    extras: dict[int, dict[str, Any]] = {export.pk: {"ladder": None} for export in exports}
    if not exports:
        return extras
    for hook in export_representation_hooks():
        for export_id, fields in (hook(list(exports)) or {}).items():
            if export_id in extras:
                extras[export_id].update(fields)
    return extras


def export_versions(*, export: NarrativeExport) -> list[dict[str, Any]]:
    return list(
        NarrativeExport.objects.filter(execution_id=export.execution_id)
        .order_by("version")
        .values("id", "version", "status", "narrative_digest", "created_at")
    )


def export_lifecycle(*, export: NarrativeExport) -> QuerySet[ExecutionEvent]:
    """The lifecycle steps of one export as written to its execution's timeline."""
    return (
        ExecutionEvent.objects.filter(
            execution_id=export.execution_id, event_type__startswith="narrative_export.", payload__export_id=export.pk
        )
        .select_related("actor")
        .order_by("sequence")
    )


def packaging_runs_for_export(*, export: NarrativeExport) -> QuerySet[PackagingRun]:
    return PackagingRun.objects.filter(export=export).order_by("-started_at", "-id")


def packaging_jobs_summary(*, user) -> dict[str, Any]:
    """Queue telemetry over the exports the viewer may see: counts per status, the oldest queued export,
    failures by error code and the most recent packaging runs."""
    now = timezone.now()
    exports = NarrativeExport.objects.visible_to(user)
    counts = dict.fromkeys(ExportStatus.values, 0)
    counts.update(dict(exports.order_by().values_list("status").annotate(count=Count("id"))))
    oldest = exports.filter(status=ExportStatus.QUEUED).aggregate(at=Min("queued_at"))["at"]
    runs = PackagingRun.objects.visible_to(user)
    failures = dict(
        runs.filter(status__in=[PackagingRunStatus.FAILED, PackagingRunStatus.RETRYING, PackagingRunStatus.ABANDONED])
        .order_by()
        .values_list("error_code")
        .annotate(count=Count("id"))
    )
    recent = runs.select_related("export").order_by("-started_at", "-id")[:RECENT_RUNS]
    return {
        "generated_at": now,
        "counts": counts,
        "oldest_queued_at": oldest,
        "oldest_queued_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
        "running": runs.filter(status=PackagingRunStatus.RUNNING).count(),
        "failures_by_error_code": failures,
        "recent_runs": [
            {
                "id": run.pk,
                "export_id": run.export_id,
                "execution_id": run.export.execution_id,
                "version": run.export.version,
                "attempt": run.attempt,
                "status": run.status,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "duration_ms": run.duration_ms,
                "bytes": run.bytes,
                "error_code": run.error_code,
                "error_message": run.error_message[:300],
            }
            for run in recent
        ],
    }


def signing_keys_list() -> QuerySet[SigningKey]:
    return SigningKey.objects.order_by("created_at", "id")


def export_selected_evidence(*, export: NarrativeExport) -> list[tuple[str, int]]:
    """The ``(kind, id)`` pairs an export version selected, in its attachment order (to start the next version
    from the same selection)."""
    rows = export.attachments.order_by("id").values_list("kind", "evidence_id", "event_id")
    return [(kind, evidence_id or event_id) for kind, evidence_id, event_id in rows if evidence_id or event_id]
