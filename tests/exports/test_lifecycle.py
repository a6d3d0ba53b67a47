"""Lifecycle records: one by one, and collected by ``lifecycle_batch``."""

import pytest
from django.db import transaction

from exports.models import ExecutionEvent
from exports.services.lifecycle import export_lifecycle_record, lifecycle_batch
from governance.models import AuditEvent
from governance.services.audit import audit_chain_verify

pytestmark = pytest.mark.django_db

STEPS = ("narrative_export.approval.stage_completed", "narrative_export.approval.stage_started")


def timeline(execution):
    return list(
        ExecutionEvent.objects.filter(execution=execution).order_by("sequence").values_list("sequence", "event_type")
    )


def audited(export):
    return list(
        AuditEvent.objects.filter(object_id=str(export.pk), action__in=STEPS)
        .order_by("sequence")
        .values_list("action", "payload")
    )


def test_a_batch_writes_the_same_rows_in_the_same_order_as_single_records(make_export, execution, scientist):
    export = make_export()
    start = execution.events.order_by("-sequence").values_list("sequence", flat=True).first()
    with transaction.atomic(), lifecycle_batch():
        for step in STEPS:
            assert export_lifecycle_record(export=export, event_type=step, actor=scientist, payload={"n": 1}) is None
        assert timeline(execution)[-1][0] == start  # nothing written until the block ends
    assert timeline(execution)[-2:] == [(start + 1, STEPS[0]), (start + 2, STEPS[1])]
    rows = audited(export)[-2:]
    assert [action for action, _ in rows] == list(STEPS)
    assert [payload["sequence"] for _, payload in rows] == [start + 1, start + 2]
    assert all(payload["export_id"] == export.pk and payload["n"] == 1 for _, payload in rows)
    export.execution.refresh_from_db()
    assert export.execution.last_sequence == start + 2
    assert audit_chain_verify(record=False).ok

    single = export_lifecycle_record(export=export, event_type=STEPS[0], actor=scientist)  # outside: written at once
    assert single.sequence == start + 3


def test_a_batch_that_raises_writes_nothing(make_export, execution):
    export = make_export()
    before, audit_rows = timeline(execution), AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic(), lifecycle_batch():
        export_lifecycle_record(export=export, event_type=STEPS[0])
        raise RuntimeError("boom")
    assert timeline(execution) == before
    assert AuditEvent.objects.count() == audit_rows
    with transaction.atomic(), lifecycle_batch():  # and the next batch starts empty
        export_lifecycle_record(export=export, event_type=STEPS[1])
    assert [event for _, event in timeline(execution)[len(before) :]] == [STEPS[1]]


def test_a_nested_batch_leaves_the_writing_to_the_outer_one(make_export, execution):
    export = make_export()
    before = len(timeline(execution))
    with transaction.atomic(), lifecycle_batch():
        with lifecycle_batch():
            export_lifecycle_record(export=export, event_type=STEPS[0])
        assert len(timeline(execution)) == before
        export_lifecycle_record(export=export, event_type=STEPS[1])
    assert [event for _, event in timeline(execution)[before:]] == list(STEPS)


def test_a_batch_over_several_executions_keeps_each_timeline_gap_free(make_export, execution, scientist, team):
    from exports.services.executions import execution_create
    from exports.services.lifecycle import LifecycleRecord, export_lifecycle_record_many

    first = make_export()
    other_execution = execution_create(team=team, title="Second run", owner=scientist)
    second = first.__class__.objects.select_related("execution").get(pk=first.pk)
    second.execution = other_execution  # a record only needs the export's id, version and execution
    execution.refresh_from_db()
    before = {execution.pk: execution.last_sequence, other_execution.pk: other_execution.last_sequence}
    export_lifecycle_record_many(
        [LifecycleRecord(export=first, event_type=STEPS[0]), LifecycleRecord(export=second, event_type=STEPS[0])]
        + [LifecycleRecord(export=first, event_type=STEPS[1])]
    )
    for target, added in ((execution, [STEPS[0], STEPS[1]]), (other_execution, [STEPS[0]])):
        rows = timeline(target)
        assert rows[-len(added) :] == [(before[target.pk] + i, step) for i, step in enumerate(added, start=1)]
        target.refresh_from_db()
        assert target.last_sequence == before[target.pk] + len(added)
    assert audit_chain_verify(record=False).ok
