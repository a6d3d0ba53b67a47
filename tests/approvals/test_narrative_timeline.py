"""The narrative's timeline narrates the experiment: previews, ladder steps and the packaging of earlier versions
stay on the execution's timeline but never grow the next signed narrative."""

import pytest

from approvals.models import ApprovalStage
from approvals.services.ladders import stage_decide
from approvals.services.preview import execution_preview_record
from exports.events import EventType
from exports.models import ExecutionEvent
from exports.services.evidence import notebook_entry_create
from exports.services.executions import EventInput, events_append, execution_create
from exports.services.narrative_exports import EvidenceRef, export_create
from tests.approvals.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(team, crew, snapshot):
    execution = execution_create(team=team, title="Stability study", owner=crew.author)
    events_append(
        execution=execution,
        actor=crew.author,
        events=[EventInput("sample.loaded", {"well": f"A{i}"}) for i in range(1, 4)],
    )
    entry = notebook_entry_create(execution=execution, actor=crew.author, title="Layout", body="Wells A1–A3.")
    return execution, [EvidenceRef("notebook_entry", entry.pk)]


def timeline_section(markdown: str) -> str:
    return markdown.split("\n## Timeline\n", 1)[1].split("\n## Evidence", 1)[0]


def decide(export, crew, role: str, decision: str) -> None:
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    stage_decide(
        export_id=export.pk,
        actor=crew.signer_for(role),
        username=crew.signer_for(role).username,
        decision=decision,
        password=PASSWORD,
        comment="Plate 3 is missing." if decision == "reject" else "",
        expected_stage_id=stage.pk,
    )


def test_previewing_ten_times_leaves_the_next_export_narrative_timeline_unchanged(study, crew):
    execution, evidence = study
    first = execution_preview_record(execution=execution, actor=crew.author)
    for _ in range(9):
        execution_preview_record(execution=execution, actor=crew.author)
    assert ExecutionEvent.objects.filter(execution=execution, event_type=EventType.PREVIEW_SUMMARY).count() == 10

    export = export_create(execution=execution, actor=crew.author, evidence=evidence)

    last_preview = ExecutionEvent.objects.filter(execution=execution, event_type=EventType.PREVIEW_SUMMARY).latest(
        "sequence"
    )
    assert export.events_through_sequence == last_preview.sequence  # covered by the export, yet not narrated
    timeline = timeline_section(export.narrative_markdown)
    assert timeline == timeline_section(first.narrative_markdown)
    assert [line.count("sample.loaded") for line in timeline.splitlines() if "sample.loaded" in line] == [1, 1, 1]
    assert EventType.PREVIEW_SUMMARY not in export.narrative_markdown
    assert "- **Events:** 3" in export.narrative_markdown


def test_a_new_version_after_a_rejection_narrates_none_of_the_rejected_version_events(study, crew):
    execution, evidence = study
    v1 = export_create(execution=execution, actor=crew.author, evidence=evidence)
    decide(v1, crew, "reviewer", "approve")
    decide(v1, crew, "qa_approver", "reject")
    governance_types = set(
        ExecutionEvent.objects.filter(execution=execution, sequence__gt=v1.events_through_sequence).values_list(
            "event_type", flat=True
        )
    )
    assert {"narrative_export.approval.stage_completed", "narrative_export.approval.rejected"} <= governance_types

    v2 = export_create(execution=execution, actor=crew.author, evidence=evidence)

    assert v2.version == 2 and v2.events_through_sequence > v1.events_through_sequence
    assert timeline_section(v2.narrative_markdown) == timeline_section(v1.narrative_markdown)
    assert "narrative_export." not in v2.narrative_markdown
    assert "governance." not in v2.narrative_markdown
