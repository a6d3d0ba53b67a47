"""Relabelling an export's classification (docs/clearance.md): by ``compliance`` or ``admin`` of its team,
never below its most sensitive evidence, and only upwards once a live signature covers it. Lives in approvals
because only approvals knows whether an export is signed."""

from __future__ import annotations

from django.db import transaction

from approvals.models import ApprovalSignature
from config.errors import Conflict, NotFound, ValidationFailed
from exports.events import EventType
from exports.models import ExportAttachment, NarrativeExport
from exports.permissions import require_team_role
from exports.services.lifecycle import export_lifecycle_record
from governance.choices import CLASSIFICATION_ORDER, Classification, RoleKey

RELABELLERS = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN})
RELABELLED_EVENT = EventType.EXPORT_RELABELLED


def _rank(label: str) -> int:
    return CLASSIFICATION_ORDER.index(label)


@transaction.atomic
def export_relabel(*, export_id: int, actor, classification: str) -> NarrativeExport:
    export = (
        NarrativeExport.objects.select_for_update(of=("self",)).select_related("execution").filter(pk=export_id).first()
    )
    if export is None:
        raise NotFound(f"Export {export_id} was not found.", code="export_not_found")
    require_team_role(user=actor, team_id=export.execution.team_id, roles=RELABELLERS, action="relabel exports")
    if classification not in Classification.values:
        choices = ", ".join(CLASSIFICATION_ORDER)
        raise ValidationFailed(
            f"Unknown classification '{classification}'.", details={"classification": [f"Choose one of {choices}."]}
        )
    before = export.classification
    if classification == before:
        return export
    labels = ExportAttachment.objects.filter(export=export, evidence__isnull=False).values_list(
        "evidence__classification", flat=True
    )
    floor = max((_rank(label) for label in labels), default=0)
    if _rank(classification) < floor:
        raise Conflict(
            f"The export holds evidence classified {CLASSIFICATION_ORDER[floor]}; it cannot be labelled lower.",
            code="below_evidence_classification",
            details={"classification": [f"At least {CLASSIFICATION_ORDER[floor]}."]},
        )
    signed = ApprovalSignature.objects.filter(ladder__export=export, superseded=False).exists()
    if signed and _rank(classification) < _rank(before):
        raise Conflict(
            "A signed export can only be relabelled upwards.",
            code="relabel_downwards_after_signing",
            details={"classification": before},
        )
    export.classification = classification
    export.save(update_fields=["classification", "updated_at"])
    export_lifecycle_record(
        export=export, event_type=RELABELLED_EVENT, actor=actor, payload={"from": before, "to": classification}
    )
    return export
