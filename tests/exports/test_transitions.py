"""The export lifecycle: every arrow of ``EXPORT_TRANSITIONS`` works, everything else is refused with a 409."""

import itertools

import pytest
from rest_framework.test import APIRequestFactory

from config.api import exception_handler
from exports.choices import EXPORT_TRANSITIONS, QUEUEABLE_EXPORT_STATUSES, ExportStatus
from exports.events import EventType
from exports.models import ExecutionEvent, NarrativeExport
from exports.queue_state import QueueState
from exports.services.transitions import IllegalExportTransition, export_transition
from governance.models import AuditEvent

ALLOWED = sorted((current, to) for current, targets in EXPORT_TRANSITIONS.items() for to in targets)
FORBIDDEN = sorted(set(itertools.product(ExportStatus.values, repeat=2)) - set(ALLOWED))
FORBIDDEN_SAMPLE = [
    (ExportStatus.REJECTED, ExportStatus.QUEUED),
    (ExportStatus.PACKAGED, ExportStatus.AWAITING_APPROVAL),
    (ExportStatus.AWAITING_APPROVAL, ExportStatus.PACKAGED),
    (ExportStatus.APPROVED, ExportStatus.PACKAGING),
    (ExportStatus.EXPIRED, ExportStatus.PACKAGED),
    (ExportStatus.FAILED, ExportStatus.PACKAGED),
    (ExportStatus.QUEUED, ExportStatus.QUEUED),
]


def test_the_table_names_every_status_and_only_known_ones():
    assert set(EXPORT_TRANSITIONS) == set(ExportStatus.values)
    assert all(set(targets) <= set(ExportStatus.values) for targets in EXPORT_TRANSITIONS.values())
    assert set(FORBIDDEN_SAMPLE) <= set(FORBIDDEN)
    assert {
        ExportStatus.AWAITING_APPROVAL,
        ExportStatus.APPROVED,
        ExportStatus.QUEUED,
        ExportStatus.FAILED,
    } == QUEUEABLE_EXPORT_STATUSES


def _export_in(make_export, status: str) -> NarrativeExport:
    export = make_export()
    NarrativeExport.objects.filter(pk=export.pk).update(status=status, queued_at=None, packaged_at=None)
    return NarrativeExport.objects.select_related("execution").get(pk=export.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "to"), ALLOWED)
def test_every_allowed_transition_moves_the_export_and_records_the_step(make_export, scientist, current, to):
    export = _export_in(make_export, current)
    state = QueueState(status="queued", attempts=2)

    export_transition(
        export=export,
        to=to,
        actor=scientist,
        event_type=EventType.PACKAGING_QUEUED,
        payload={"previous_status": current},
        queue_state=state,
    )

    stored = NarrativeExport.objects.get(pk=export.pk)
    assert stored.status == to
    assert stored.packaging_queue_state == state.as_json()
    assert (stored.queued_at is not None) == (to == ExportStatus.QUEUED)
    assert (stored.packaged_at is not None) == (to == ExportStatus.PACKAGED)
    event = ExecutionEvent.objects.filter(execution=export.execution).latest("sequence")
    assert event.event_type == EventType.PACKAGING_QUEUED
    assert event.payload["previous_status"] == current
    assert AuditEvent.objects.filter(action=EventType.PACKAGING_QUEUED, object_id=str(export.pk)).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "to"), FORBIDDEN_SAMPLE)
def test_a_forbidden_transition_is_refused_and_changes_nothing(make_export, scientist, current, to):
    export = _export_in(make_export, current)
    events_before = ExecutionEvent.objects.filter(execution=export.execution).count()

    with pytest.raises(IllegalExportTransition) as refused:
        export_transition(
            export=export,
            to=to,
            actor=scientist,
            event_type=EventType.PACKAGING_QUEUED,
            payload={},
            queue_state=QueueState(status="queued"),
        )

    assert refused.value.status_code == 409
    assert refused.value.code == "illegal_transition"
    assert refused.value.details == {"export_id": export.pk, "from": current, "to": to}
    stored = NarrativeExport.objects.get(pk=export.pk)
    assert stored.status == current
    assert ExecutionEvent.objects.filter(execution=export.execution).count() == events_before


def test_the_api_renders_an_illegal_transition_as_409_in_the_error_shape():
    export = NarrativeExport(pk=7, status=ExportStatus.REJECTED)
    request = APIRequestFactory().post("/api/anything")

    response = exception_handler(IllegalExportTransition(export=export, to=ExportStatus.QUEUED), {"request": request})

    assert response.status_code == 409
    assert response.data == {
        "error": {
            "code": "illegal_transition",
            "message": "Export 7 is rejected and cannot become queued.",
            "details": {"export_id": 7, "from": "rejected", "to": "queued"},
        }
    }


def test_the_documented_table_is_the_table_in_the_code():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    section = text.split("### Transitions", 1)[1].split("###", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    documented = {(current.strip().strip("`"), to.strip().strip("`")) for current, to in rows}
    assert documented == set(ALLOWED)
