import threading

import pytest
from django.db import connection

from exports.models import ExecutionEvent
from exports.services.executions import EventInput, events_append

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 8
BATCHES = 5
PER_BATCH = 20


def run_writers(batch_writer) -> None:
    """``batch_writer(writer, batch)`` for BATCHES batches in each of WRITERS threads released together; each
    thread has its own database connection. Fails with the errors the threads met."""
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            barrier.wait()
            for batch in range(BATCHES):
                batch_writer(number, batch)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_appends_never_share_a_sequence(execution, scientist):
    def append(writer: int, batch: int) -> None:
        events = [EventInput("load.tick", {"writer": writer, "batch": batch, "i": i}) for i in range(PER_BATCH)]
        events_append(execution=execution, actor=scientist, events=events)

    run_writers(append)
    sequences = list(ExecutionEvent.objects.filter(execution=execution).values_list("sequence", flat=True))
    total = WRITERS * BATCHES * PER_BATCH
    assert len(sequences) == total
    assert sorted(sequences) == list(range(1, total + 1))
    execution.refresh_from_db()
    assert execution.last_sequence == total
    # Each batch is contiguous: appends are serialized, never interleaved.
    rows = ExecutionEvent.objects.filter(execution=execution).order_by("sequence").values_list("payload", flat=True)
    payloads = list(rows)
    for start in range(0, total, PER_BATCH):
        chunk = payloads[start : start + PER_BATCH]
        assert len({(p["writer"], p["batch"]) for p in chunk}) == 1


def test_concurrent_lifecycle_batches_on_one_execution_stay_gap_free_and_chained(make_export, execution, scientist):
    """Interactive lifecycle batches (one execution each) reserve their sequences and insert their events in one
    statement; run together they never share a sequence, and the audit rows name the sequences the timeline got."""
    from django.db import transaction

    from exports.services.lifecycle import export_lifecycle_record, lifecycle_batch
    from governance.models import AuditEvent
    from governance.services.audit import audit_chain_verify

    export = make_export()
    start = execution.events.order_by("-sequence").values_list("sequence", flat=True).first()

    def record(writer: int, batch: int) -> None:
        with transaction.atomic(), lifecycle_batch():
            for step in range(3):
                export_lifecycle_record(
                    export=export,
                    event_type="narrative_export.approval.stage_started",
                    actor=scientist,
                    payload={"writer": writer, "batch": batch, "step": step},
                )

    run_writers(record)
    total = WRITERS * BATCHES * 3
    rows = list(
        ExecutionEvent.objects.filter(execution=execution, sequence__gt=start)
        .order_by("sequence")
        .values_list("sequence", "payload")
    )
    assert [sequence for sequence, _ in rows] == list(range(start + 1, start + total + 1))
    for offset in range(0, total, 3):  # each batch is contiguous and in order
        chunk = [payload for _, payload in rows[offset : offset + 3]]
        assert len({(p["writer"], p["batch"]) for p in chunk}) == 1
        assert [p["step"] for p in chunk] == [0, 1, 2]
    audited = {
        (p["writer"], p["batch"], p["step"]): p["sequence"]
        for p in AuditEvent.objects.filter(
            action="narrative_export.approval.stage_started", payload__has_key="writer"
        ).values_list("payload", flat=True)
    }
    assert audited == {(p["writer"], p["batch"], p["step"]): sequence for sequence, p in rows}
    assert audit_chain_verify(record=False).ok
