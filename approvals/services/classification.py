"""Relabelling an export's or an evidence item's classification (docs/clearance.md): by ``compliance`` or
``admin`` of its team. An export never goes below its most sensitive evidence, and only upwards once a live
signature covers it; evidence only goes upwards once a signed export cites it, and raising it raises every export
citing it that is labelled lower. Lives in approvals because only approvals knows whether an export is signed."""

from __future__ import annotations

from django.db import transaction

from approvals.models import ApprovalSignature
from config.errors import Conflict, NotFound, ValidationFailed
from exports.events import EventType
from exports.models import Evidence, ExportAttachment, NarrativeExport
from exports.permissions import require_team_role
from exports.services.executions import execution_event_record
from exports.services.lifecycle import export_lifecycle_record
from governance.choices import CLASSIFICATION_ORDER, Classification, RoleKey

RELABELLERS = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN})
RELABELLED_EVENT = EventType.EXPORT_RELABELLED
EVIDENCE_RELABELLED_EVENT = EventType.EVIDENCE_RELABELLED


def _rank(label: str) -> int:
    return CLASSIFICATION_ORDER.index(label)


def _require_known(classification: str) -> None:
    if classification not in Classification.values:
        choices = ", ".join(CLASSIFICATION_ORDER)
        raise ValidationFailed(
            f"Unknown classification '{classification}'.", details={"classification": [f"Choose one of {choices}."]}
        )


@transaction.atomic
def export_relabel(*, export_id: int, actor, classification: str) -> NarrativeExport:
    export = (
        NarrativeExport.objects.select_for_update(of=("self",)).select_related("execution").filter(pk=export_id).first()
    )
    if export is None:
        raise NotFound(f"Export {export_id} was not found.", code="export_not_found")
    require_team_role(user=actor, team_id=export.execution.team_id, roles=RELABELLERS, action="relabel exports")
    _require_known(classification)
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


@transaction.atomic
def evidence_relabel(*, execution_id: int, evidence_id: int, actor, classification: str) -> tuple[Evidence, list[int]]:
    """Relabel evidence of an execution; returns it and the ids of the exports raised with it. Recorded as
    ``execution.evidence_relabelled`` (``evidence_id``, ``kind``, ``from``, ``to``), each raised export as
    ``narrative_export.relabelled`` (with ``evidence_id``)."""
    evidence = (
        Evidence.objects.select_for_update(of=("self",))
        .select_related("execution")
        .filter(pk=evidence_id, execution_id=execution_id)
        .first()
    )
    if evidence is None:
        raise NotFound(f"Evidence {evidence_id} was not found in execution {execution_id}.", code="evidence_not_found")
    require_team_role(user=actor, team_id=evidence.execution.team_id, roles=RELABELLERS, action="relabel evidence")
    _require_known(classification)
    before = evidence.classification
    if classification == before:
        return evidence, []
    cited_in = ExportAttachment.objects.filter(evidence=evidence).values("export_id")
    citing = NarrativeExport.objects.select_for_update(of=("self",)).select_related("execution").filter(pk__in=cited_in)
    signed = ApprovalSignature.objects.filter(ladder__export__in=citing, superseded=False).exists()
    if signed and _rank(classification) < _rank(before):
        raise Conflict(
            "Evidence cited by a signed export can only be relabelled upwards.",
            code="relabel_downwards_after_signing",
            details={"classification": before},
        )
    evidence.classification = classification
    evidence.save(update_fields=["classification"])
    execution_event_record(
        execution=evidence.execution,
        actor=actor,
        event_type=EVIDENCE_RELABELLED_EVENT,
        payload={"evidence_id": evidence.pk, "kind": evidence.kind, "from": before, "to": classification},
        audit_obj=evidence,
    )
    raised = [export for export in citing.order_by("pk") if _rank(export.classification) < _rank(classification)]
    for export in raised:
        was = export.classification
        export.classification = classification
        export.save(update_fields=["classification", "updated_at"])
        export_lifecycle_record(
            export=export,
            event_type=RELABELLED_EVENT,
            actor=actor,
            payload={"from": was, "to": classification, "evidence_id": evidence.pk},
        )
    return evidence, [export.pk for export in raised]
