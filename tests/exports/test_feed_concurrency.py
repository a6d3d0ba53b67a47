"""The feed under concurrent writers, and the advisory lock of the operators' run (PostgreSQL)."""

import json
import threading

import psycopg
import pytest
from django.db import connection

from exports.feed.cursors import FileCursorStore
from exports.feed.service import governance_feed_run, governance_feed_run_recorded
from exports.feed.sinks import FileSink
from governance.models import AuditEvent
from governance.services.audit import audit_record
from governance.services.jobs import _advisory_key

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 4
PER_WRITER = 60
ACTION = "narrative_export.packaging.queued"


def test_four_writers_appending_while_the_feed_runs_lose_nothing(team, tmp_path):
    out, store = tmp_path / "feed.ndjson", FileCursorStore(tmp_path / "cursor.json")
    barrier = threading.Barrier(WRITERS + 1)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            barrier.wait()
            for i in range(PER_WRITER):
                audit_record(action=ACTION, team_id=team.pk, payload={"writer": number, "i": i})
                if i % 7 == 0:  # a row of another type between feed rows
                    audit_record(action="narrative_export.created", team_id=team.pk, payload={"writer": number})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    runs = 0
    while any(thread.is_alive() for thread in threads):
        governance_feed_run(sink=FileSink(out), store=store, limit=10_000, batch_size=7)
        runs += 1
    for thread in threads:
        thread.join()
    assert not errors, errors
    governance_feed_run(sink=FileSink(out), store=store, limit=10_000, batch_size=7)
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    sequences = [row["sequence"] for row in exported]
    expected = list(AuditEvent.objects.filter(action=ACTION).order_by("sequence").values_list("sequence", flat=True))
    assert len(expected) == WRITERS * PER_WRITER
    assert sequences == expected  # nothing lost, nothing twice, in commit order
    assert {(row["payload"]["writer"], row["payload"]["i"]) for row in exported} == {
        (w, i) for w in range(WRITERS) for i in range(PER_WRITER)
    }
    assert runs >= 1


def test_the_operators_run_is_skipped_while_another_holds_the_lock(team, tmp_path):
    audit_record(action=ACTION, team_id=team.pk)
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"],
        autocommit=True,
    ) as other:  # fmt: skip
        other.execute("SELECT pg_advisory_lock(%s)", [_advisory_key("governance-feed")])
        skipped = governance_feed_run_recorded(sink=FileSink(tmp_path / "a.ndjson"), limit=100)
        assert skipped.skipped and skipped.exported == 0
        other.execute("SELECT pg_advisory_unlock(%s)", [_advisory_key("governance-feed")])
    done = governance_feed_run_recorded(sink=FileSink(tmp_path / "b.ndjson"), limit=100)
    assert not done.skipped and done.exported == 1


class CrashOnSave(FileCursorStore):
    def __init__(self, path, nth):
        super().__init__(path)
        self.saves, self.nth = 0, nth

    def save(self, *, cursor, rows):
        self.saves += 1
        if self.saves == self.nth:
            raise RuntimeError("crash between send and cursor write")
        return super().save(cursor=cursor, rows=rows)


def test_a_crash_with_the_next_batch_read_ahead_resends_only_the_crashed_batch(team, tmp_path):
    for i in range(20):
        audit_record(action=ACTION, team_id=team.pk, payload={"i": i})
    out, path = tmp_path / "feed.ndjson", tmp_path / "cursor.json"
    with pytest.raises(RuntimeError):
        governance_feed_run(sink=FileSink(out), store=CrashOnSave(path, nth=3), limit=100, batch_size=4)
    governance_feed_run(sink=FileSink(out), store=FileCursorStore(path), limit=100, batch_size=4)
    sequences = [json.loads(line)["sequence"] for line in out.read_text().splitlines()]
    expected = list(AuditEvent.objects.filter(action=ACTION).order_by("sequence").values_list("sequence", flat=True))
    assert sequences == expected[:12] + expected[8:]  # the third batch twice, nothing lost
