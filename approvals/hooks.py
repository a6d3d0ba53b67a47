"""How approvals plugs into the extension points of ``exports`` (see exports/hooks.py and settings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from approvals.models import ApprovalHistory, ApprovalLadder, ApprovalSignature, ApprovalStage, StageEscalation
from approvals.selectors import ladder_detail, ladders_for_exports
from approvals.services.ladders import ladder_instantiate
from approvals.services.signature_records import signature_fields
from exports import narratives as n
from exports.hooks import ApprovalRecord
from exports.models import NarrativeExport
from exports.selectors.team_data import TeamDataSection
from textpolicy.utc import utc_iso


def export_created(export: NarrativeExport, actor) -> None:
    """DOSSIER_EXPORT_CREATED_HOOKS: build the ladder inside the export's creation transaction."""
    ladder_instantiate(export=export, actor=actor)


def export_representation(exports: Sequence[NarrativeExport]) -> dict[int, dict[str, Any]]:
    """DOSSIER_EXPORT_REPRESENTATION_HOOKS: ``{"ladder": {"status", "stages": [...]}}`` for a page of exports."""
    ladders = ladders_for_exports(export.pk for export in exports)
    empty: dict[str, Any] = {"status": None, "iteration": None, "stages": []}
    return {export.pk: {"ladder": ladders.get(export.pk, empty)} for export in exports}


def _in_team(model):
    return lambda team_id: model.objects.filter(ladder__export__execution__team_id=team_id)


def team_data_sections() -> tuple[TeamDataSection, ...]:
    """DOSSIER_TEAM_DATA_SECTIONS: the team's ladders and their records for its data export (docs/team-data.md).
    Signatures, approval history and escalations are kept by an erasure, as the law requires."""
    return (
        TeamDataSection("ladders", lambda team_id: ApprovalLadder.objects.filter(export__execution__team_id=team_id)),
        TeamDataSection("stages", _in_team(ApprovalStage)),
        TeamDataSection("signatures", _in_team(ApprovalSignature), retained=True),
        TeamDataSection("approval_history", _in_team(ApprovalHistory), retained=True),
        TeamDataSection("escalations", _in_team(StageEscalation), retained=True),
    )


def approval_record(export: NarrativeExport) -> ApprovalRecord:
    """DOSSIER_APPROVAL_RECORD_PROVIDER: every signature (superseded ones too, marked) for ``narrative.md`` and
    the whole approval record — ladder, signatures, history — for ``approvals.json``. Deterministic for a given
    ladder state, so re-packaging a version gives the same bytes."""
    ladder = ladder_detail(export=export)
    if ladder is None:
        document = {"export_id": export.pk, "version": export.version, "narrative_digest": export.narrative_digest}
        return ApprovalRecord(signatures=(), document={**document, "ladder": None, "signatures": [], "history": []})
    signatures = list(ladder.signatures.all())
    return ApprovalRecord(
        signatures=tuple(_narrated_signature(signature) for signature in signatures),
        document={
            "export_id": export.pk,
            "version": export.version,
            "narrative_digest": export.narrative_digest,
            "ladder": {
                "status": ladder.status,
                "iteration": ladder.iteration,
                "template_snapshot_id": ladder.template_snapshot_id,
                "finalized_at": utc_iso(ladder.finalized_at),
                "stages": [_stage_document(stage) for stage in ladder.stages.all()],
            },
            "signatures": [_signature_document(signature) for signature in signatures],
            "history": [_history_document(row) for row in ladder.history.all()],
        },
    )


def _narrated_signature(signature: ApprovalSignature) -> n.Signature:
    return n.Signature(
        stage_index=signature.stage_index + 1,
        stage_name=signature.stage_name,
        required_role=signature.required_role,
        signer_name=signature.printed_name,
        signed_at=signature.signed_at,
        meaning=signature.meaning,
        comment=signature.comment,
        digest=signature.narrative_digest,
        decision=n.Decision(signature.decision),
        superseded=signature.superseded,
        iteration=signature.iteration,
    )


def _stage_document(stage: ApprovalStage) -> dict[str, Any]:
    return {
        "id": stage.pk,
        "number": stage.index + 1,
        "name": stage.name,
        "required_role": stage.required_role,
        "status": stage.status,
        "iteration": stage.iteration,
        "assignee": stage.assignee.username if stage.assignee else None,
        "started_at": utc_iso(stage.started_at),
        "due_at": utc_iso(stage.due_at),
        "completed_at": utc_iso(stage.completed_at),
    }


def _signature_document(signature: ApprovalSignature) -> dict[str, Any]:
    return {
        "id": signature.pk,
        **signature_fields(signature),
        "superseded": signature.superseded,
        "superseded_at": utc_iso(signature.superseded_at),
        "superseded_reason": signature.superseded_reason,
    }


def _history_document(row: ApprovalHistory) -> dict[str, Any]:
    return {
        "id": row.pk,
        "action": row.action,
        "stage_number": row.stage.index + 1 if row.stage else None,
        "actor": row.actor.username if row.actor else None,
        "from_assignee": row.from_assignee.username if row.from_assignee else None,
        "to_assignee": row.to_assignee.username if row.to_assignee else None,
        "from_status": row.from_status,
        "to_status": row.to_status,
        "reason": row.reason,
        "iteration": row.iteration,
        "at": utc_iso(row.created_at),
    }
