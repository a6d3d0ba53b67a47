"""Creating narrative exports: version N+1 of an execution's dossier, rendered, redacted and pinned to a template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from config.errors import Conflict, NotFound, ValidationFailed
from exports.choices import EvidenceKind, ExportStatus
from exports.events import EventType
from exports.formats import BUNDLE_FORMAT_VERSION
from exports.hooks import export_created_hooks
from exports.models import Evidence, Execution, ExecutionEvent, ExportAttachment, NarrativeExport
from exports.services.lifecycle import export_lifecycle_record
from exports.services.rendering import narrative_render, redaction_policy_current
from governance.choices import Classification
from governance.models import WorkflowTemplateSnapshot
from governance.selectors.templates import (
    snapshot_records_terms,
    snapshot_require_intact,
    template_snapshot_for_key,
    template_snapshot_resolve,
)

CLASSIFICATION_ORDER: list[str] = [
    Classification.PUBLIC,
    Classification.INTERNAL,
    Classification.CONFIDENTIAL,
    Classification.RESTRICTED,
]


@dataclass(frozen=True)
class EvidenceRef:
    kind: str
    id: int


def _snapshot_for(*, execution: Execution, template_key: str) -> WorkflowTemplateSnapshot:
    if template_key:
        snapshot = template_snapshot_for_key(team_id=execution.team_id, template_key=template_key)
        if snapshot is None:
            raise Conflict(
                f"Template '{template_key}' has no published version.",
                code="template_not_published",
                details={"template_key": template_key},
            )
    else:
        snapshot = template_snapshot_resolve(
            team_id=execution.team_id, protocol_template_key=execution.protocol_template_key
        )
        if snapshot is None:
            raise Conflict(
                "No published workflow template applies to this execution; publish one or assign one to the team.",
                code="no_published_template",
                details={"protocol_template": execution.protocol_template_key, "team": execution.team.slug},
            )
    return snapshot_require_intact(snapshot)


@dataclass(frozen=True)
class EvidenceSelection:
    evidence: list[Evidence]
    events: list[ExecutionEvent]
    missing: list[EvidenceRef]


def evidence_refs_parse(text: str) -> list[EvidenceRef]:
    """``"kind:id,kind:id"`` (a query-string selection) as references; empty selects nothing; ValidationFailed
    when malformed."""
    if not text.strip():
        return []
    kinds = set(EvidenceKind.values)
    refs, invalid = [], []
    for part in (piece.strip() for piece in text.split(",")):
        kind, _, raw_id = part.partition(":")
        if kind in kinds and raw_id.isdigit() and int(raw_id) > 0:
            refs.append(EvidenceRef(kind=kind, id=int(raw_id)))
        else:
            invalid.append(part)
    if invalid:
        raise ValidationFailed(
            "Select evidence as kind:id pairs separated by commas, e.g. notebook_entry:4,file:7.",
            code="invalid_evidence_selector",
            details={"fields": {"evidence": [f"Not a kind:id pair: {part!r}" for part in invalid]}},
        )
    return refs


def evidence_selection(*, execution: Execution, refs: Sequence[EvidenceRef] | None) -> EvidenceSelection:
    """Load the selected evidence of ``execution`` (``refs=None``: all its evidence rows); references that name
    nothing in this execution are returned as ``missing``. Selecting one item twice is refused."""
    if refs is None:
        return EvidenceSelection(list(Evidence.objects.filter(execution=execution).order_by("id")), [], [])
    seen: set[tuple[str, int]] = set()
    duplicates = []
    for ref in refs:
        if (ref.kind, ref.id) in seen:
            duplicates.append({"kind": ref.kind, "id": ref.id})
        seen.add((ref.kind, ref.id))
    if duplicates:
        raise ValidationFailed(
            "Each evidence item may be selected once.", code="duplicate_evidence", details={"evidence": duplicates}
        )
    event_ids = [ref.id for ref in refs if ref.kind == EvidenceKind.TIMELINE_EVENT]
    evidence_ids = [ref.id for ref in refs if ref.kind != EvidenceKind.TIMELINE_EVENT]
    evidence = list(Evidence.objects.filter(execution=execution, id__in=evidence_ids).order_by("id"))
    events = list(ExecutionEvent.objects.filter(execution=execution, id__in=event_ids).select_related("actor"))
    found = {(row.kind, row.pk) for row in evidence} | {(EvidenceKind.TIMELINE_EVENT.value, row.pk) for row in events}
    missing = [ref for ref in refs if (ref.kind, ref.id) not in found]
    return EvidenceSelection(evidence, events, missing)


def _selection(*, execution: Execution, refs: Sequence[EvidenceRef]) -> tuple[list[Evidence], list[ExecutionEvent]]:
    """Load the selected evidence; every reference must name evidence of this very execution."""
    selection = evidence_selection(execution=execution, refs=refs)
    if selection.missing:
        raise NotFound(
            f"Some selected evidence does not exist in execution {execution.pk}.",
            code="unknown_evidence",
            details={"evidence": [{"kind": ref.kind, "id": ref.id} for ref in selection.missing]},
        )
    purged = [row.pk for row in selection.evidence if row.purged_at is not None]
    if purged:
        raise Conflict(
            "Some selected evidence files were purged by retention and can no longer be exported.",
            code="evidence_purged",
            details={"evidence": [{"kind": "file", "id": pk} for pk in purged]},
        )
    return selection.evidence, selection.events


def export_classification(requested: str | None, evidence: Sequence[Evidence]) -> str:
    """An export is classified at least as high as its most sensitive evidence."""
    levels = [requested or Classification.INTERNAL, *(row.classification for row in evidence)]
    return max(levels, key=CLASSIFICATION_ORDER.index)


def _narrative_store(export: NarrativeExport, *, evidence_rows, event_rows):
    """Render the new export's narrative, store it with its digest, manifest and redaction counts (and the
    retention date already set), and record its attachments. Returns the rendering."""
    rendered = narrative_render(export=export, evidence=evidence_rows, events=event_rows)
    export.narrative_markdown = rendered.approval_text
    export.evidence_manifest = rendered.manifest
    export.narrative_digest = rendered.digest
    export.redaction_counts = rendered.redaction_counts
    export.save(
        update_fields=[
            "retain_until",
            "retention_mode",
            "retention_keep_versions",
            "narrative_markdown",
            "evidence_manifest",
            "narrative_digest",
            "redaction_counts",
            "updated_at",
        ]
    )
    ExportAttachment.objects.bulk_create(
        ExportAttachment(
            export=export,
            kind=plan.kind,
            evidence_id=plan.evidence_id,
            event_id=plan.event_id,
            title=plan.title[:300],
            size=plan.size,
            sha256=plan.sha256,
            bundle_path=plan.bundle_path,
        )
        for plan in rendered.attachments
    )
    return rendered


def _retention_apply(export: NarrativeExport, snapshot: WorkflowTemplateSnapshot) -> None:
    """The export's retention terms from its snapshot (docs/records-lifecycle.md); its artifact inherits them."""
    terms = snapshot_records_terms(snapshot)
    days = terms.retention_days or settings.DOSSIER_ARTIFACT_RETENTION_DAYS
    export.retain_until = export.created_at + timedelta(days=days)
    export.retention_mode = terms.retention_mode
    export.retention_keep_versions = terms.keep_versions


@transaction.atomic
def export_create(
    *,
    execution: Execution,
    actor,
    evidence: Sequence[EvidenceRef],
    template_key: str = "",
    notes: str = "",
    classification: str | None = None,
) -> NarrativeExport:
    """Create export version N+1 of ``execution``: render and redact its narrative, pin the template snapshot,
    record the selection, write ``narrative_export.created`` and run the creation hooks (the approval ladder).

    Versions are numbered under the execution's row lock, so concurrent creations get consecutive versions.
    """
    locked = Execution.objects.select_for_update(of=("self",)).select_related("team", "owner").get(pk=execution.pk)
    snapshot = _snapshot_for(execution=locked, template_key=template_key)
    evidence_rows, event_rows = _selection(execution=locked, refs=evidence)
    version = (NarrativeExport.objects.filter(execution=locked).aggregate(v=Max("version"))["v"] or 0) + 1
    export = NarrativeExport.objects.create(
        execution=locked,
        version=version,
        status=ExportStatus.AWAITING_APPROVAL,
        author=actor,
        template_snapshot=snapshot,
        notes=notes,
        classification=export_classification(classification, evidence_rows),
        events_through_sequence=locked.last_sequence,
        redaction_policy=redaction_policy_current(enabled=snapshot.template.redaction_enabled),
        bundle_format_version=BUNDLE_FORMAT_VERSION,
    )
    _retention_apply(export, snapshot)
    rendered = _narrative_store(export, evidence_rows=evidence_rows, event_rows=event_rows)
    export_lifecycle_record(
        export=export,
        event_type=EventType.EXPORT_CREATED,
        actor=actor,
        payload={
            "narrative_digest": export.narrative_digest,
            "template_snapshot_id": snapshot.pk,
            "evidence_count": len(rendered.manifest),
            "events_through_sequence": export.events_through_sequence,
            "redactions": sum(rendered.redaction_counts.values()),
        },
    )
    for hook in export_created_hooks():
        hook(export, actor)
    return export
