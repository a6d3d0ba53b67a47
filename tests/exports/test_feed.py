"""The governance event feed: records, cursor stores, crash semantics, sinks and the command."""

import hashlib
import hmac
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command

from exports.feed.cursors import DbCursorStore, FileCursorStore
from exports.feed.records import feed_lag, feed_records_after
from exports.feed.service import FEED_JOB, governance_feed_run, governance_feed_run_recorded
from exports.feed.sinks import FileSink, SinkRefused, WebhookSink
from exports.services.lifecycle import export_lifecycle_record
from governance.feed_registry import feed_event_types, feed_event_types_register
from governance.models import AuditEvent, FeedCursor, ScheduledJobRun
from governance.services.audit import audit_record, text_digest

pytestmark = pytest.mark.django_db

QUEUED = "narrative_export.packaging.queued"


def feed_sequences() -> list[int]:
    return list(AuditEvent.objects.filter(action__in=list(feed_event_types())).values_list("sequence", flat=True))


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def events(make_export):
    export = make_export()
    for attempt in range(7):
        export_lifecycle_record(export=export, event_type=QUEUED, payload={"attempt": attempt})
    return export


def test_records_carry_the_feed_fields_and_only_registered_types(events, team):
    audit_record(action="narrative_export.created", obj=events, team_id=team.pk)  # not a feed type
    records = feed_records_after(cursor=0, limit=1000)
    assert [r.sequence for r in records] == feed_sequences()
    rows = [json.loads(r.data) for r in records]
    queued = [row for row in rows if row["type"] == QUEUED]
    assert len(queued) == 7
    first = queued[0]
    assert set(first) == {
        "record_id", "sequence", "type", "category", "export_id", "execution_id", "team", "stage", "role",
        "payload", "created_at",
    }  # fmt: skip
    assert first["record_id"] == f"audit-{first['sequence']}"
    assert (first["export_id"], first["execution_id"], first["team"]) == (events.pk, events.execution_id, "alpha")
    assert first["category"] == "packaging" and first["payload"]["attempt"] == 0
    assert first["created_at"].endswith("Z") and "T" in first["created_at"]
    assert all(row["type"] != "narrative_export.created" for row in rows)
    stage_rows = [row for row in rows if row["type"] == "narrative_export.approval.stage_started"]
    assert stage_rows and stage_rows[0]["stage"] and stage_rows[0]["role"]
    # Cursor and limit: strictly after the cursor, in order.
    after = feed_records_after(cursor=records[2].sequence, limit=2)
    assert [r.sequence for r in after] == [r.sequence for r in records[3:5]]


def test_a_type_registered_later_flows_through(team):
    audit_record(action="governance.legal_hold.applied", team_id=team.pk, payload={"scope": "team"})
    assert feed_records_after(cursor=0, limit=10) == []
    feed_event_types_register("legal_hold", "governance.legal_hold.applied")
    try:
        (record,) = feed_records_after(cursor=0, limit=10)
        assert json.loads(record.data)["category"] == "legal_hold"
        with pytest.raises(ValueError):
            feed_event_types_register("retention", "governance.legal_hold.applied")
    finally:
        from governance import feed_registry

        feed_registry._TYPES.pop("governance.legal_hold.applied")


class CrashAfterSend(FileCursorStore):
    """Dies once, on its ``nth`` save: the batch was accepted, the cursor not written."""

    def __init__(self, path, nth):
        super().__init__(path)
        self.saves, self.nth = 0, nth

    def save(self, *, cursor, rows):
        self.saves += 1
        if self.saves == self.nth:
            raise RuntimeError("crash between send and cursor write")
        return super().save(cursor=cursor, rows=rows)


def test_a_crash_between_send_and_cursor_write_resends_one_batch_and_loses_nothing(events, tmp_path):
    out, cursor_path = tmp_path / "feed.ndjson", tmp_path / "cursor.json"
    with pytest.raises(RuntimeError):
        governance_feed_run(sink=FileSink(out), store=CrashAfterSend(cursor_path, nth=2), limit=1000, batch_size=3)
    state = FileCursorStore(cursor_path).load()
    first_run = lines(out)
    assert len(first_run) == 6 and state.cursor == first_run[2]["sequence"] and state.rows == 3
    result = governance_feed_run(sink=FileSink(out), store=FileCursorStore(cursor_path), limit=1000, batch_size=3)
    ids = [row["record_id"] for row in lines(out)]
    expected = [f"audit-{sequence}" for sequence in feed_sequences()]
    assert set(ids) == set(expected)  # every event at least once
    duplicates = [record_id for record_id in set(ids) if ids.count(record_id) > 1]
    assert sorted(duplicates) == sorted(row["record_id"] for row in first_run[3:6])  # only the crashed batch
    assert list(dict.fromkeys(ids)) == expected  # deduplicated by record_id: exactly once, in order
    document = json.loads(cursor_path.read_text())
    assert set(document) == {"cursor", "rows", "updatedAt"} and document["updatedAt"].endswith("Z")
    assert document["cursor"] == feed_sequences()[-1] == result.state.cursor
    assert document["rows"] == len(expected)  # rows counted by the cursor: the lost save never counted


def test_limit_stops_the_run_and_the_next_run_resumes(events, tmp_path):
    out, store = tmp_path / "feed.ndjson", FileCursorStore(tmp_path / "c.json")
    assert governance_feed_run(sink=FileSink(out), store=store, limit=4, batch_size=3).exported == 4
    governance_feed_run(sink=FileSink(out), store=store, limit=1000, batch_size=3)
    assert [row["sequence"] for row in lines(out)] == feed_sequences()
    assert feed_lag(cursor=store.load().cursor).events == 0
    assert feed_lag(cursor=0).events == len(feed_sequences())


def test_unreadable_cursor_file_is_an_error(tmp_path, db):
    path = tmp_path / "c.json"
    path.write_text('{"cursor": "x"}')
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("export_governance_events", "--cursor-store-path", str(path), stderr=stderr)
    assert exit_info.value.code == 1 and "error:" in stderr.getvalue()


class Hook(BaseHTTPRequestHandler):
    failures = 0  # answer 503 to this many requests first
    status_after = 200
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        if type(self).failures > 0:
            type(self).failures -= 1
            status = 503
        else:
            status = type(self).status_after
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    class Handler(Hook):
        received = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Handler, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_retries_signs_and_moves_the_cursor_only_on_success(events, hook, tmp_path, settings):
    handler, url = hook
    settings.DOSSIER_FEED_WEBHOOK_SECRET = "s3cret"
    settings.DOSSIER_FEED_WEBHOOK_BACKOFF_SECONDS = 0.01
    handler.failures = 2
    cursor_path = tmp_path / "c.json"
    call_command(
        "export_governance_events", "--sink", "webhook", "--webhook-url", url, "--cursor-store-path", str(cursor_path),
        "--batch-size", "100", stderr=io.StringIO(),
    )  # fmt: skip
    assert len(handler.received) == 3  # two 503s, then accepted
    keys = {headers["Idempotency-Key"] for headers, _ in handler.received}
    assert len(keys) == 1  # the retries are the same batch
    headers, body = handler.received[-1]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Dossier-Signature"], expected)
    delivered = [event["sequence"] for event in json.loads(body)["events"]]
    assert delivered == feed_sequences()
    assert FileCursorStore(cursor_path).load().cursor == delivered[-1]


def test_webhook_failing_every_attempt_exits_3_and_keeps_the_cursor(events, hook, tmp_path, settings):
    handler, url = hook
    settings.DOSSIER_FEED_WEBHOOK_ATTEMPTS = 3
    settings.DOSSIER_FEED_WEBHOOK_BACKOFF_SECONDS = 0.01
    handler.failures = 100
    cursor_path = tmp_path / "c.json"
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "export_governance_events", "--sink", "webhook", "--webhook-url", url,
            "--cursor-store-path", str(cursor_path), stderr=stderr,
        )  # fmt: skip
    assert exit_info.value.code == 3
    assert len(handler.received) == 3 and "refused" in stderr.getvalue()
    assert FileCursorStore(cursor_path).load().cursor == 0


def test_webhook_client_error_is_not_retried_and_backoff_grows(events, hook):
    handler, url = hook
    handler.status_after = 400
    sink = WebhookSink(url=url, attempts=5, sleep=lambda _: None)
    with pytest.raises(SinkRefused):
        sink.send(feed_records_after(cursor=0, limit=5))
    assert len(handler.received) == 1 and "X-Dossier-Signature" not in handler.received[0][0]
    waits = [WebhookSink(url=url, backoff_seconds=1.0, jitter=lambda: 0.5).delay(n) for n in (1, 2, 3, 4)]
    assert waits == sorted(waits) and waits[0] < waits[-1]
    jittered = {WebhookSink(url=url, jitter=lambda j=j: j).delay(3) for j in (0.0, 0.5, 0.99)}
    assert len(jittered) == 3


def test_stdout_sink_and_argument_errors(events, tmp_path):
    out = io.StringIO()
    call_command(
        "export_governance_events", "--limit", "3", "--cursor-store-path", str(tmp_path / "c.json"),
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    assert [json.loads(line)["sequence"] for line in out.getvalue().splitlines()] == feed_sequences()[:3]
    for bad in (["--sink", "file"], ["--limit", "0"], []):
        with pytest.raises(SystemExit) as exit_info:
            call_command("export_governance_events", *bad, stderr=io.StringIO())
        assert exit_info.value.code == 1


def test_db_store_run_is_recorded_with_its_latest_chunk(events, tmp_path):
    out = tmp_path / "feed.ndjson"
    result = governance_feed_run_recorded(sink=FileSink(out), limit=1000)
    cursor = FeedCursor.objects.get(name="governance-feed")
    assert cursor.cursor == feed_sequences()[-1] == result.state.cursor and cursor.rows == result.exported
    run = ScheduledJobRun.objects.get(job=FEED_JOB)
    assert run.outcome == "succeeded" and run.rows == result.exported and run.last_success_at
    assert (run.details["chunk_after"], run.details["chunk_until"]) == (0, cursor.cursor)
    again = governance_feed_run_recorded(sink=FileSink(out), limit=1000)
    assert again.exported == 0
    run.refresh_from_db()
    assert run.rows == 0 and run.details["chunk_until"] == cursor.cursor  # the latest chunk is kept
    assert DbCursorStore().load().cursor == cursor.cursor


def test_the_hourly_schedule_runs_the_db_feed(events, settings, tmp_path):
    from django_celery_beat.models import PeriodicTask

    from exports.tasks import export_governance_events

    settings.DOSSIER_FEED_FILE_PATH = str(tmp_path / "scheduled.ndjson")
    call_command("setup_schedules", stdout=io.StringIO())
    task = PeriodicTask.objects.get(name="governance-event-feed")
    assert task.task == "exports.export_governance_events" and task.interval.every == 3600
    outcome = export_governance_events.delay().get()
    assert outcome == {"outcome": "succeeded", "exported": len(feed_sequences()), "cursor": feed_sequences()[-1]}
    assert FeedCursor.objects.get(name="governance-feed").cursor == feed_sequences()[-1]
    assert len(lines(tmp_path / "scheduled.ndjson")) == len(feed_sequences())


def test_text_is_escaped_into_valid_json(team):
    awkward = 'qa"A"\\ü\u202e'  # code-shaped (no white space), so the audit row keeps it as it is
    audit_record(
        action="narrative_export.approval.stage_started",
        team_id=team.pk,
        payload={"stage_name": 'Stage "A" \\ ü', "required_role": awkward, "note": "tab\there"},
    )
    (record,) = feed_records_after(cursor=0, limit=10)
    row = json.loads(record.data)
    assert row["role"] == awkward and row["export_id"] is None
    # A stage's name is configuration and stays readable; free text reaches the feed only as its digest.
    assert row["stage"] == 'Stage "A" \\ ü' and row["payload"]["note"] == text_digest("tab\there")
