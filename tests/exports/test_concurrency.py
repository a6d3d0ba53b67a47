import threading

import pytest
from django.db import connection

from exports.models import ExecutionEvent
from exports.services.executions import EventInput, events_append

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 8
BATCHES = 5
PER_BATCH = 20


def test_concurrent_appends_never_share_a_sequence(execution, scientist):
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            barrier.wait()
            for batch in range(BATCHES):
                events = [EventInput("load.tick", {"writer": number, "batch": batch, "i": i}) for i in range(PER_BATCH)]
                events_append(execution=execution, actor=scientist, events=events)
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
