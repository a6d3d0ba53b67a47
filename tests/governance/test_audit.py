import pytest
from django.core.management import call_command
from django.db import connection

from governance.models import AuditEvent
from governance.services.audit import audit_chain_verify, audit_record
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
