import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.models import AuditChainHead, AuditEvent
from governance.services.audit import AuditEntry, audit_chain_verify, audit_record, audit_record_many
from tests.tampering import tamper_audit


@pytest.fixture
def chain(db, team):
    return [audit_record(action="test.event", team_id=team.pk, payload={"n": n, "text": "é"}) for n in range(5)]


def test_rows_are_chained_in_sequence(chain):
    assert [row.sequence for row in chain] == [1, 2, 3, 4, 5]
    assert chain[0].prev_hash == "0" * 64
    for previous, row in zip(chain, chain[1:], strict=False):
        assert row.prev_hash == previous.hash
    report = audit_chain_verify()
    assert report.ok and report.rows == 5


def test_batched_appends_store_what_was_hashed_and_return_saved_rows(chain, team, django_user_model):
    actor = django_user_model.objects.create_user("auditor-ä", password="x")  # noqa: S106
    entries = [
        AuditEntry(action="test.batch", actor=actor if n % 2 else None, obj=team, team_id=team.pk,
                   payload={"n": n, "nested": {"z": [1, 2.5, None], "a": "ünïcode"}})
        for n in range(7)
    ]  # fmt: skip
    rows = audit_record_many(entries, batch_size=3)
    assert [row.sequence for row in rows] == list(range(6, 13))
    stored = {row.pk: row for row in AuditEvent.objects.filter(sequence__gte=6)}
    assert sorted(stored) == sorted(row.pk for row in rows)
    for row in rows:
        again = stored[row.pk]
        fields = ("sequence", "created_at", "actor_id", "actor_username", "action", "object_type", "object_id",
                  "team_id", "payload", "prev_hash", "hash")  # fmt: skip
        assert [getattr(again, name) for name in fields] == [getattr(row, name) for name in fields]
    head = AuditChainHead.objects.get()
    assert (head.last_sequence, head.last_hash) == (12, rows[-1].hash)
    report = audit_chain_verify()
    assert report.ok and report.rows == 12


@pytest.mark.parametrize("one_statement_rows", [64, 0], ids=["chained-by-the-database", "chained-in-batches"])
def test_both_ways_of_chaining_hash_what_python_hashes(chain, team, django_user_model, monkeypatch, one_statement_rows):
    """Short appends are hashed by PostgreSQL in one statement, long ones here in batches: both give the row hash
    ``audit_row_hash`` gives, on content that JSON escapes (quotes, backslashes, control characters, non-ASCII)."""
    from governance.services import audit

    monkeypatch.setattr(audit, "ONE_STATEMENT_ROWS", one_statement_rows)
    actor = django_user_model.objects.create_user('o"brien\\ß', password="x")  # noqa: S106
    payloads = [{"code": 'a"b\\c', "n": 10**15, "f": 0.1, "list": [True, None, "日本"], "emoji": "🧪"},
                {"nested": {"z": {"y": []}, "a": "tab\tline\nend"}}, {}]  # fmt: skip
    entries = [AuditEntry(action="test.chain", actor=actor, obj=team, team_id=team.pk, payload=p) for p in payloads]
    with CaptureQueriesContext(connection) as queries:
        rows = audit_record_many(entries, batch_size=2)
    chained_by_the_database = [q for q in queries.captured_queries if q["sql"].startswith("WITH RECURSIVE head")]
    assert len(chained_by_the_database) == (1 if one_statement_rows else 0)
    assert [row.sequence for row in rows] == [6, 7, 8]
    for row in rows:
        stored = AuditEvent.objects.get(pk=row.pk)
        expected = audit.audit_row_hash(**{name: getattr(stored, name) for name in audit.HASHED_FIELDS})
        assert stored.hash == row.hash == expected
    assert AuditChainHead.objects.get().last_hash == rows[-1].hash
    report = audit_chain_verify()
    assert report.ok and report.rows == 8


def test_verify_command_passes_on_an_intact_chain(chain, capsys):
    call_command("verify_audit_chain")
    assert "intact: 5 rows" in capsys.readouterr().out


def test_a_row_changed_by_raw_sql_breaks_the_chain_and_is_named(chain, capsys):
    tamper_audit("UPDATE governance_auditevent SET payload = %s WHERE sequence = 3", ['{"n": 99, "text": "é"}'])
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_audit_chain")
    assert exit_info.value.code == 3
    out = capsys.readouterr().out
    assert "broken at sequence 3" in out
    assert "content does not match" in out


def test_a_deleted_row_breaks_the_chain(chain):
    tamper_audit("DELETE FROM governance_auditevent WHERE sequence = 2", [])
    report = audit_chain_verify()
    assert not report.ok
    assert report.broken_sequence == 3


def test_a_truncated_tail_is_detected_through_the_chain_head(chain):
    tamper_audit("DELETE FROM governance_auditevent WHERE sequence = 5", [])
    report = audit_chain_verify()
    assert not report.ok
    assert "head records 5" in report.reason


@pytest.mark.postgres
def test_the_database_refuses_update_and_delete(chain):
    from django.db import DatabaseError, transaction

    for sql in ("UPDATE governance_auditevent SET action = 'x'", "DELETE FROM governance_auditevent"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.count() == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broken", [None, 2, 5, 6, 9])
def test_parallel_verification_agrees_with_the_serial_walk(team, monkeypatch, broken):
    from governance.services import audit

    for n in range(10):
        audit_record(action="test.event", team_id=team.pk, payload={"n": n})
    if broken:
        tamper_audit("UPDATE governance_auditevent SET action = 'forged' WHERE sequence = %s", [broken])
    monkeypatch.setattr(audit, "PARALLEL_MIN_ROWS", 2)
    parallel = audit_chain_verify(record=False, workers=3)
    serial = audit_chain_verify(record=False, workers=1)
    assert parallel == serial
    assert parallel.ok is (broken is None)
    assert parallel.broken_sequence == broken
