"""Reads for executions, timelines and evidence, always restricted to the viewer's teams first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import BooleanField, Case, CharField, ExpressionWrapper, F, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Concat

from config.errors import NotFound, ValidationFailed
from exports.choices import EvidenceKind
from exports.filtersets import EvidenceFilterSet, ExecutionEventFilterSet, ExecutionFilterSet
from exports.models import Evidence, Execution, ExecutionEvent
from exports.withholding import withheld_marker
from governance.choices import Classification
from governance.hooks import ExecutionReference
from governance.services.clearance import clearance_covers, clearance_level


def _filtered(filterset_class, data: dict[str, Any] | None, queryset: QuerySet) -> QuerySet:
    filterset = filterset_class(data or {}, queryset)
    if not filterset.is_valid():
        raise ValidationFailed("Invalid filter.", code="invalid_filter", details={"fields": filterset.errors})
    return filterset.qs


def executions_for_user(*, user, filters: dict[str, Any] | None = None) -> QuerySet[Execution]:
    queryset = Execution.objects.visible_to(user).select_related("team", "owner")
    return _filtered(ExecutionFilterSet, filters, queryset)


def execution_get_for_user(*, user, execution_id: int) -> Execution:
    execution = Execution.objects.visible_to(user).select_related("team", "owner").filter(pk=execution_id).first()
    if execution is None:
        raise NotFound(f"Execution {execution_id} was not found.", code="execution_not_found")
    return execution


def execution_reference_for_user(*, user, execution_id: int) -> ExecutionReference | None:
    """The governance view of an execution the user may see (``DOSSIER_EXECUTION_RESOLVER``), else None."""
    found = Execution.objects.visible_to(user).filter(pk=execution_id).values("team_id", "protocol_template_key")
    row = found.first()
    if row is None:
        return None
    return ExecutionReference(id=execution_id, **row)


def events_for_execution(*, execution: Execution, filters: dict[str, Any] | None = None) -> QuerySet[ExecutionEvent]:
    queryset = ExecutionEvent.objects.filter(execution=execution).select_related("actor").order_by("sequence")
    return _filtered(ExecutionEventFilterSet, filters, queryset)


def evidence_for_user(*, user, filters: dict[str, Any]) -> QuerySet:
    """Evidence descriptors for attachment pickers.

    ``timeline_event`` descriptors are the execution's events themselves, so a dossier can cite a single entry of
    the timeline as evidence without copying it (they carry no label of their own). Evidence labelled above the
    viewer's clearance in the team is listed withheld (docs/clearance.md): its id, kind, label, size and date, with
    ``withheld`` true, the title replaced by a marker and no digest, so neither its title nor a guess at its content
    can be confirmed. Rows carry ``shown_title`` and ``shown_sha256``: what the viewer may see of each.
    """
    execution = execution_get_for_user(user=user, execution_id=_execution_id(filters))
    if filters.get("kind") == EvidenceKind.TIMELINE_EVENT:
        return (
            ExecutionEvent.objects.filter(execution=execution)
            .order_by("sequence")
            .annotate(
                kind=Value(EvidenceKind.TIMELINE_EVENT.value),
                shown_title=Concat(Value("#"), Cast("sequence", CharField()), Value(" "), F("event_type")),
                created_at=F("recorded_at"),
                classification=Value(None, output_field=CharField()),
                withheld=Value(False),
            )
            .values("kind", "id", "shown_title", "created_at", "classification", "withheld")
        )
    level = clearance_level(user=user, team_id=execution.team_id)
    above = [str(label) for label in Classification.values if not clearance_covers(level, label)]
    hidden = Q(classification__in=above)
    queryset = Evidence.objects.filter(execution=execution).order_by("id")
    return (
        _filtered(EvidenceFilterSet, filters, queryset)
        .annotate(
            withheld=ExpressionWrapper(hidden, output_field=BooleanField()),
            shown_title=Case(
                *(When(classification=label, then=Value(withheld_marker(label))) for label in above),
                default=F("title"),
                output_field=CharField(),
            ),
            shown_sha256=Case(When(hidden, then=Value(None)), default=F("sha256"), output_field=CharField()),
        )
        .values("kind", "id", "shown_title", "size", "shown_sha256", "created_at", "classification", "withheld")
    )


def _execution_id(filters: dict[str, Any]) -> int:
    raw: Any = filters.get("execution")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(
            "Give the execution id as ?execution=<id>.", details={"fields": {"execution": ["A number is required."]}}
        ) from None


@dataclass(frozen=True)
class PickerItem:
    """One row of the evidence picker."""

    kind: str
    id: int
    title: str
    size: int | None
    classification: str
    created_at: Any

    @property
    def value(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def kind_label(self) -> str:
        return EvidenceKind(self.kind).label

    @property
    def classification_label(self) -> str:
        return Classification(self.classification).label if self.classification else ""


def evidence_picker_items(*, execution: Execution, event_ids: Iterable[int] = ()) -> list[PickerItem]:
    """The execution's evidence rows (oldest first), then the timeline entries in ``event_ids`` (those a previous
    version cited), as picker rows; two queries."""
    rows = Evidence.objects.filter(execution=execution).order_by("id")
    items = [
        PickerItem(row["kind"], row["id"], row["title"], row["size"], row["classification"], row["created_at"])
        for row in rows.values("kind", "id", "title", "size", "classification", "created_at")
    ]
    event_ids = list(event_ids)
    if event_ids:
        events = ExecutionEvent.objects.filter(execution=execution, id__in=event_ids).order_by("sequence")
        items += [
            PickerItem(
                EvidenceKind.TIMELINE_EVENT.value,
                row["id"],
                f"#{row['sequence']} {row['event_type']}",
                None,
                "",
                row["recorded_at"],
            )
            for row in events.values("id", "sequence", "event_type", "recorded_at")
        ]
    return items
