"""The scientist's ladder preview (docs/templates-and-baselines.md, "Ladder projection"): which rules a new export of
an execution would get, when each stage would start and fall due given the current load of its role, and the
narrative it would carry.

It lives in ``approvals`` because the projection needs the open approval stages; it only reads exports and
governance through their public functions. A preview writes its audit row and a ``governance.preview.summary``
timeline event, which analytics fuses with stage completions to measure how good the projections were."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals.selectors import role_open_load
from exports.events import EventType
from exports.models import Execution, ExecutionEvent
from exports.selectors.executions import execution_get_for_user
from exports.services.clearance import PreviewWithholding, preview_withholding
from exports.services.executions import execution_event_record
from exports.services.narrative_exports import (
    EvidenceRef,
    evidence_refs_parse,
    evidence_selection,
    export_classification,
)
from exports.services.rendering import narrative_preview_render
from governance.ladder import ProjectedStage, ladder_simulate
from governance.models import GovernanceTemplateAuditLog, WorkflowTemplateSnapshot
from governance.selectors.templates import SnapshotResolution, snapshot_document, template_snapshot_resolution
from governance.services.templates import template_preview_record
from textpolicy.utc import utc_iso


@dataclass(frozen=True)
class PreviewWarning:
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class LadderPreview:
    execution: Execution
    snapshot: WorkflowTemplateSnapshot | None
    source: str
    stages: list[ProjectedStage]
    narrative_markdown: str
    evidence_manifest: list[dict[str, Any]]
    warnings: list[PreviewWarning]
    previewed_at: Any
    audit_log: GovernanceTemplateAuditLog
    event: ExecutionEvent

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution.pk,
            "template_snapshot_id": self.snapshot.pk if self.snapshot else None,
            "template": _template_summary(self.snapshot, self.source),
            "previewed_at": utc_iso(self.previewed_at),
            "stages": [stage.as_dict() for stage in self.stages],
            "narrative_markdown": self.narrative_markdown,
            "evidence": self.evidence_manifest,
            "warnings": [warning.as_dict() for warning in self.warnings],
        }


def _template_summary(snapshot: WorkflowTemplateSnapshot | None, source: str) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {
        "template_key": snapshot.template_key,
        "version": snapshot.version,
        "content_sha256": snapshot.content_sha256,
        "source": source,
    }


def _resolution_warnings(resolution: SnapshotResolution) -> list[PreviewWarning]:
    warnings = []
    if resolution.snapshot is None:
        warnings.append(
            PreviewWarning(
                "no_published_template",
                "No published workflow template applies to this execution: an export could not be created until "
                "one is published or assigned to the team.",
                {"notes": resolution.notes},
            )
        )
        return warnings
    for note in resolution.notes:
        warnings.append(PreviewWarning("template_level_skipped", note))
    if resolution.drifted:
        snapshot = resolution.snapshot
        warnings.append(
            PreviewWarning(
                "template_snapshot_drift",
                f"Template snapshot {snapshot.pk} ({snapshot.template_key} v{snapshot.version}) no longer matches "
                "its recorded sha256: exports on it are refused until a compliance administrator publishes a new "
                "version.",
                {"snapshot_id": snapshot.pk, "recorded_sha256": snapshot.content_sha256},
            )
        )
    return warnings


def _document(snapshot: WorkflowTemplateSnapshot | None) -> dict[str, Any]:
    if snapshot is None:
        return {}
    try:
        document = snapshot_document(snapshot)
    except ValueError:
        return {}  # a drifted snapshot may not even parse; the drift warning says why there are no stages
    return document if isinstance(document, dict) else {}


def _projected(document: dict[str, Any], *, start_at, team_id: int) -> list[ProjectedStage]:
    try:
        roles = {str(stage["required_role"]) for stage in document.get("stages") or []}
        load = role_open_load(team_id=team_id, roles=roles) if roles else {}
        return ladder_simulate(document, start_at=start_at, open_load=load)
    except (KeyError, TypeError, ValueError):
        return []


def preview_summary_payload(preview_stages: Sequence[ProjectedStage], **fields: Any) -> dict[str, Any]:
    """The ``governance.preview.summary`` payload: per stage the role, SLA and projection, keyed by position so
    analytics can join it with ``narrative_export.approval.stage_completed`` of the export that follows."""
    return {
        **fields,
        "stages": [
            {
                "position": stage.position,
                "name": stage.name,
                "required_role": stage.required_role,
                "sla_hours": stage.sla_hours,
                "open_load": stage.open_load,
                "projected_start": utc_iso(stage.projected_start),
                "projected_due": utc_iso(stage.projected_due),
            }
            for stage in preview_stages
        ],
    }


@transaction.atomic
def execution_preview_record(
    *, execution: Execution, actor, evidence: Sequence[EvidenceRef] | None = None
) -> LadderPreview:
    """Preview the next export of ``execution`` (already checked visible to ``actor``) and record that it was
    shown: resolve the snapshot without refusing drift, project the ladder from now, render the narrative of
    ``evidence`` (None: all the execution's evidence rows), then write the template audit log and the
    ``governance.preview.summary`` timeline event with its audit row."""
    now = timezone.now()
    resolution = template_snapshot_resolution(
        team_id=execution.team_id, protocol_template_key=execution.protocol_template_key
    )
    snapshot = resolution.snapshot
    stages = _projected(_document(snapshot), start_at=now, team_id=execution.team_id)
    selection = evidence_selection(execution=execution, refs=evidence)
    warnings = [*_resolution_warnings(resolution), *_selection_warnings(execution, selection, evidence)]
    narrative = narrative_preview_render(
        execution=execution,
        author=actor,
        snapshot=snapshot,
        evidence=selection.evidence,
        events=selection.events,
        classification=export_classification(None, selection.evidence),
        at=now,
    )
    shown = preview_withholding(
        markdown=narrative.markdown,
        manifest=narrative.manifest,
        evidence=selection.evidence,
        user=actor,
        team_id=execution.team_id,
    )
    warnings += _clearance_warnings(shown)
    audit_log, event = _preview_write(
        execution=execution,
        actor=actor,
        resolution=resolution,
        stages=stages,
        evidence_count=len(narrative.manifest),
        warning_codes=[warning.code for warning in warnings],
        now=now,
    )
    return LadderPreview(
        execution=execution,
        snapshot=snapshot,
        source=resolution.source,
        stages=stages,
        narrative_markdown=shown.markdown,
        evidence_manifest=shown.manifest,
        warnings=warnings,
        previewed_at=now,
        audit_log=audit_log,
        event=event,
    )


def _clearance_warnings(shown: PreviewWithholding) -> list[PreviewWarning]:
    if not shown.withheld:
        return []
    what = "replaced by a marker" if shown.markdown else "left out with the whole narrative"
    return [
        PreviewWarning(
            "clearance_withheld",
            f"{shown.withheld} selected evidence item(s) are above your clearance ({shown.clearance}) and are {what}.",
            {"withheld": shown.withheld, "clearance": shown.clearance, "policy": shown.policy},
        )
    ]


def _selection_warnings(
    execution: Execution, selection, evidence: Sequence[EvidenceRef] | None
) -> list[PreviewWarning]:
    warnings = []
    if selection.missing:
        warnings.append(
            PreviewWarning(
                "evidence_missing",
                f"{len(selection.missing)} selected evidence item(s) do not exist in execution {execution.pk} "
                "and are left out of the preview.",
                {"evidence": [{"kind": ref.kind, "id": ref.id} for ref in selection.missing]},
            )
        )
    if not selection.evidence and not selection.events:
        warnings.append(
            PreviewWarning(
                "no_evidence_selected",
                "No evidence is selected: the dossier would narrate the timeline only."
                if evidence is not None
                else "This execution has no evidence yet: the dossier would narrate the timeline only.",
            )
        )
    return warnings


def _preview_write(
    *,
    execution: Execution,
    actor,
    resolution: SnapshotResolution,
    stages: list[ProjectedStage],
    evidence_count: int,
    warning_codes: list[str],
    now,
):
    """The records of a preview: the template audit log, then the summary event on the timeline with its audit
    row. Returns (audit log, event)."""
    snapshot = resolution.snapshot
    audit_log = template_preview_record(
        actor=actor,
        execution_id=execution.pk,
        team_id=execution.team_id,
        snapshot=snapshot,
        details={
            "source": resolution.source,
            "drifted": resolution.drifted,
            "stages": len(stages),
            "evidence_count": evidence_count,
            "warnings": warning_codes,
        },
    )
    payload = preview_summary_payload(
        stages,
        template_snapshot_id=snapshot.pk if snapshot else None,
        template_key=snapshot.template_key if snapshot else None,
        template_version=snapshot.version if snapshot else None,
        template_source=resolution.source or None,
        previewed_at=utc_iso(now),
        events_through_sequence=execution.last_sequence,
        evidence_count=evidence_count,
        warnings=warning_codes,
        template_audit_log_id=audit_log.pk,
    )
    event = execution_event_record(
        execution=execution, actor=actor, event_type=EventType.PREVIEW_SUMMARY, payload=payload
    )
    return audit_log, event


def execution_preview_record_for_user(*, user, execution_id: int, evidence: str | None = None) -> LadderPreview:
    """The preview as the API and the page ask for it: ``evidence`` is the ``kind:id,...`` selector (None: all
    evidence). A foreign team's or unknown execution is NotFound; a malformed selector is ValidationFailed."""
    execution = execution_get_for_user(user=user, execution_id=execution_id)
    refs = evidence_refs_parse(evidence) if evidence is not None else None
    return execution_preview_record(execution=execution, actor=user, evidence=refs)
