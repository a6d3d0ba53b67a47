"""The lock order (docs/architecture.md, "Lock order"): the audit-chain head is the last row a transaction locks,
so writers that meet on an execution, its exports and the chain wait for each other but never deadlock."""

import hashlib
import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from exports.models import Evidence, ExecutionEvent, NarrativeExport
from exports.services.downloads import artifact_download_open
from exports.services.evidence import evidence_file_store
from exports.services.executions import EventInput, events_append
from exports.services.packaging import packaging_enqueue
from governance.models import AuditEvent
from governance.services.audit import audit_chain_verify, audit_record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 12


def _upload(execution, actor, n: int) -> None:
    content = f"well,od600\nA{n},0.{n:02d}\n".encode()
    upload = SimpleUploadedFile(f"plate {n}.csv", content, content_type="text/csv")
    evidence_file_store(execution=execution, actor=actor, upload=upload, sha256=hashlib.sha256(content).hexdigest())


def _append(execution, actor, n: int) -> None:
    events_append(
        execution=execution, actor=actor, events=[EventInput("load.tick", {"n": n, "i": i}) for i in range(3)]
    )


def _download(export, actor, n: int) -> None:
    artifact_download_open(export=export, actor=actor).handle.close()


def test_uploads_appends_and_downloads_on_one_execution_never_deadlock(
    make_export, allow_packaging, execution, scientist
):
    export = make_export()
    packaging_enqueue(export=export)
    export = NarrativeExport.objects.select_related("execution").get(pk=export.pk)
    assert export.status == "packaged"
    before_events = ExecutionEvent.objects.filter(execution=execution).count()
    before_evidence = Evidence.objects.filter(execution=execution).count()
    writers = [(_upload, execution)] * 2 + [(_append, execution)] * 3 + [(_download, export)] * 3
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def work(operation, target) -> None:
        try:
            barrier.wait()
            for n in range(ROUNDS):
                operation(target, scientist, n)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=writer) for writer in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, "\n\n".join(str(e) for e in errors)
    appended = 3 * ROUNDS * 3
    downloaded = 3 * ROUNDS
    assert Evidence.objects.filter(execution=execution).count() == before_evidence + 2 * ROUNDS
    assert ExecutionEvent.objects.filter(execution=execution).count() == before_events + appended + downloaded
    assert AuditEvent.objects.filter(action="narrative_export.artifact.downloaded").count() == downloaded
    assert audit_chain_verify(record=False).ok


def _lock_head_then_execution(execution_id: int, request_waiting: threading.Event, done: threading.Event) -> None:
    """Hold the audit-chain head, wait until another transaction waits for it, then ask for the execution row that
    transaction holds: a real deadlock, which PostgreSQL resolves by rolling back the request (it waited first)."""
    from django.db import transaction

    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM governance_auditchainhead WHERE id = 1 FOR UPDATE")
            for _ in range(200):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
                    "pg_backend_pid() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
            request_waiting.set()
            cursor.execute("SELECT 1 FROM exports_execution WHERE id = %s FOR UPDATE", [execution_id])
            transaction.set_rollback(True)
    finally:
        connection.close()
        done.set()


def test_a_request_rolled_back_by_a_deadlock_answers_503_database_busy(client_for, execution, scientist):
    """The second line of defence: should a deadlock still happen, nothing was committed and the client is told to
    retry (503 ``database_busy`` with ``Retry-After``), never a 500."""
    audit_record(action="test.head_exists")  # the head row exists for the other transaction to lock
    waiting, done = threading.Event(), threading.Event()
    other = threading.Thread(target=_lock_head_then_execution, args=(execution.pk, waiting, done))
    other.start()
    path = f"/api/experiment-console/sessions/{execution.pk}/events"
    response = client_for(scientist).post(path, [{"event_type": "step.started", "payload": {}}], format="json")
    other.join(timeout=30)
    assert waiting.is_set() and done.is_set()
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "database_busy"
    assert not ExecutionEvent.objects.filter(execution=execution, event_type="step.started").exists()
