"""The transactional outbox (docs/architecture.md, "The outbox"): written with the change, relayed after commit,
retried with backoff, claimed with SKIP LOCKED, idempotent e-mails, pruning, the command, the task and metrics."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from exports.tasks import relay_outbox
from governance.models import OutboxMessage
from governance.outbox import UnknownOutboxHandler
from governance.selectors.outbox import outbox_backlog
from governance.selectors.preferences import viewer_time_zone_cache_key
from governance.services.outbox import (
    DEDUPE_HEADER,
    HANDLER_TIME_ZONES_FORGET,
    email_enqueue,
    outbox_backoff,
    outbox_enqueue,
    outbox_prune,
    outbox_relay,
    viewer_time_zones_forget,
)
from tests.governance import outbox_housekeeping

pytestmark = pytest.mark.django_db
# Nothing listens here (the range of ports this suite may use): a mail server that is down.
DEAD_SMTP_PORT = 8218


def _cached_zone(user_id: int, zone: str = "Europe/Berlin") -> str:
    key = viewer_time_zone_cache_key(user_id)
    cache.set(key, zone, 600)
    return key


def _mail_server_down(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", DEAD_SMTP_PORT, 2


def _due(message: OutboxMessage) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(available_at=timezone.now() - timedelta(seconds=1))


def test_a_message_commits_with_the_change_and_is_relayed_after_commit(django_capture_on_commit_callbacks):
    key = _cached_zone(41)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        viewer_time_zones_forget(user_ids=[41])
        message = OutboxMessage.objects.get()
        assert message.delivered_at is None and cache.get(key) == "Europe/Berlin"
    message.refresh_from_db()
    assert message.delivered_at is not None and message.attempts == 1 and message.last_error == ""
    assert cache.get(key) is None


def test_a_rolled_back_change_leaves_no_message():
    with pytest.raises(RuntimeError), transaction.atomic():
        viewer_time_zones_forget(user_ids=[7])
        raise RuntimeError("the change fails")
    assert not OutboxMessage.objects.exists()


def test_one_commit_relays_all_its_messages_in_one_pass(django_capture_on_commit_callbacks):
    keys = [_cached_zone(user_id) for user_id in (1, 2, 3)]
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        for user_id in (1, 2, 3):
            viewer_time_zones_forget(user_ids=[user_id])
    assert len(callbacks) == 3  # one per message, but the first relays them all
    assert OutboxMessage.objects.filter(delivered_at__isnull=False).count() == 3
    assert all(cache.get(key) is None for key in keys)


def test_an_unregistered_handler_is_refused_when_written_and_kept_pending_when_relayed():
    with pytest.raises(UnknownOutboxHandler):
        outbox_enqueue(handler="nobody.handles.this", payload={})
    stray = OutboxMessage.objects.create(handler="retired.handler", payload={})
    report = outbox_relay()
    stray.refresh_from_db()
    assert (report.delivered, report.failed) == (0, 1)
    assert stray.delivered_at is None and stray.attempts == 1 and "retired.handler" in stray.last_error


def test_a_failed_delivery_is_retried_with_backoff_until_it_succeeds(settings):
    _mail_server_down(settings)
    message = email_enqueue(subject="Escalation", body="Stage 2 overdue.\n", to=["qa@example.org"], dedupe_key="k1")
    before = timezone.now()
    report = outbox_relay()
    message.refresh_from_db()
    assert (report.delivered, report.failed) == (0, 1)
    assert message.delivered_at is None and message.attempts == 1 and "ConnectionRefusedError" in message.last_error
    assert message.available_at >= before + timedelta(seconds=settings.DOSSIER_OUTBOX_BACKOFF_SECONDS)
    assert outbox_relay().handled == 0  # not due yet

    _due(message)
    assert outbox_relay().failed == 1
    message.refresh_from_db()
    assert message.attempts == 2

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _due(message)
    assert outbox_relay().delivered == 1
    message.refresh_from_db()
    assert message.delivered_at is not None and message.attempts == 3 and message.last_error == ""
    (sent,) = mail.outbox
    assert sent.to == ["qa@example.org"] and sent.extra_headers[DEDUPE_HEADER] == "k1"
    assert sent.extra_headers["Message-ID"].startswith("<")


def test_backoff_doubles_and_is_capped(settings):
    settings.DOSSIER_OUTBOX_BACKOFF_SECONDS, settings.DOSSIER_OUTBOX_BACKOFF_MAX_SECONDS = 5, 60
    assert [outbox_backoff(n).total_seconds() for n in (1, 2, 3, 4, 5, 9)] == [5, 10, 20, 40, 60, 60]


def test_an_email_whose_key_was_delivered_is_not_sent_again(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email_enqueue(subject="Escalation", body="x\n", to=["a@example.org"], dedupe_key="escalation:1")
    assert outbox_relay().delivered == 1
    again = email_enqueue(subject="Escalation", body="x\n", to=["a@example.org"], dedupe_key="escalation:1")
    email_enqueue(subject="Escalation", body="x\n", to=["a@example.org"], dedupe_key="escalation:2")
    assert outbox_relay().delivered == 2
    again.refresh_from_db()
    assert again.delivered_at is not None  # done: its effect had already happened
    assert [message.extra_headers[DEDUPE_HEADER] for message in mail.outbox] == ["escalation:1", "escalation:2"]


def test_a_claimed_message_is_not_delivered_twice():
    key = _cached_zone(5)
    outbox_enqueue(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": [5]})
    OutboxMessage.objects.update(available_at=timezone.now() + timedelta(seconds=300))  # another relay claimed it
    assert outbox_relay().handled == 0
    assert cache.get(key) == "Europe/Berlin"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_locked_by_another_relay_is_skipped_not_waited_for():
    import psycopg

    locked = outbox_enqueue(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": [1]})
    free = outbox_enqueue(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": [2]})
    OutboxMessage.objects.update(delivered_at=None, available_at=timezone.now() - timedelta(seconds=1))
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
    ) as other:
        other.execute("SELECT id FROM governance_outboxmessage WHERE id = %s FOR UPDATE", [locked.pk])
        report = outbox_relay()
    assert (report.delivered, report.failed) == (1, 0)
    assert OutboxMessage.objects.get(pk=free.pk).delivered_at is not None
    assert OutboxMessage.objects.get(pk=locked.pk).delivered_at is None


def test_prune_removes_old_deliveries_only(settings):
    settings.DOSSIER_OUTBOX_RETAIN_DAYS = 7
    now = timezone.now()
    old = OutboxMessage.objects.create(handler=HANDLER_TIME_ZONES_FORGET, delivered_at=now - timedelta(days=8))
    recent = OutboxMessage.objects.create(handler=HANDLER_TIME_ZONES_FORGET, delivered_at=now - timedelta(days=6))
    pending = OutboxMessage.objects.create(handler=HANDLER_TIME_ZONES_FORGET, created_at=now - timedelta(days=30))
    assert outbox_prune() == 1
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert not OutboxMessage.objects.filter(pk=old.pk).exists()


def test_the_command_reports_progress_and_exits_0_when_everything_is_delivered(capsys):
    for user_id in (1, 2):
        outbox_enqueue(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": [user_id]})
    call_command("relay_outbox")
    out = capsys.readouterr().out
    assert "relayed 2: 2 delivered, 0 failed" in out
    assert "summary: 2 delivered, 0 failed, 0 pruned; 0 pending" in out


def test_the_command_exits_1_and_names_the_failure_when_a_delivery_fails(settings, capsys):
    _mail_server_down(settings)
    email_enqueue(subject="s", body="b\n", to=["x@example.org"], dedupe_key="k")
    with pytest.raises(SystemExit) as exited:
        call_command("relay_outbox")
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert "governance.email: ConnectionRefusedError" in captured.err
    assert "summary: 0 delivered, 1 failed, 0 pruned; 1 pending" in captured.out


def test_the_task_relays_then_runs_the_housekeeping_hooks(settings):
    settings.DOSSIER_OUTBOX_AFTER_RELAY = [
        "tests.governance.outbox_housekeeping.broken",
        "tests.governance.outbox_housekeeping.record_run",
    ]
    outbox_enqueue(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": [3]})
    result = relay_outbox.delay().get()
    assert result["delivered"] == 1 and result["failed"] == 0
    assert result["housekeeping_failed"] == ["tests.governance.outbox_housekeeping.broken"]
    assert outbox_housekeeping.runs() == 1  # a broken hook does not stop the next


def test_the_relay_task_is_scheduled_every_few_seconds(settings):
    (entry,) = [entry for entry in settings.DOSSIER_SCHEDULES.values() if entry["task"] == "exports.relay_outbox"]
    assert entry["every"] <= timedelta(seconds=30)


def test_metrics_show_the_backlog(settings, team):
    settings.METRICS_ALLOW_ANONYMOUS = True
    message = outbox_enqueue(handler=HANDLER_TIME_ZONES_FORGET, payload={"user_ids": [1]})
    OutboxMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=3), attempts=2)
    outbox_enqueue(handler="governance.team_state_changed", payload={"team_id": team.pk, "execution_id": None})
    backlog = outbox_backlog()
    assert backlog.pending == 2 and backlog.failing == 1 and backlog.oldest_age_seconds >= 180
    body = Client().get("/metrics").content.decode()
    assert f'dossier_outbox_pending{{handler="{HANDLER_TIME_ZONES_FORGET}"}} 1.0' in body
    assert 'dossier_outbox_pending{handler="governance.team_state_changed"} 1.0' in body
    assert "dossier_outbox_failing 1.0" in body
    age = next(line for line in body.splitlines() if line.startswith("dossier_outbox_oldest_pending_age_seconds "))
    assert float(age.split()[1]) >= 180


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("after_response", [True, False], ids=["after-the-response", "before-the-response"])
def test_a_requests_messages_are_relayed_once_its_response_is_sent(settings, execution, scientist, after_response):
    """Served through Django's WSGI handler as gunicorn serves it: the response is produced, sent, then closed.
    With DOSSIER_OUTBOX_RELAY_AFTER_RESPONSE the committed message waits for the close; without, it was relayed
    before the answer."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory
    from knox.models import AuthToken

    from governance.services.outbox import HANDLER_TEAM_STATE_CHANGED

    settings.DOSSIER_OUTBOX_RELAY_AFTER_RESPONSE = after_response
    token = AuthToken.objects.create(user=scientist)[1]
    environ = (
        RequestFactory()
        .post(
            f"/api/experiment-console/sessions/{execution.pk}/events",
            data={"event_type": "step.started"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token}",
        )
        .environ
    )
    statuses = []
    response = WSGIHandler()(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["201 Created"]
    message = OutboxMessage.objects.get(handler=HANDLER_TEAM_STATE_CHANGED)
    assert (message.delivered_at is None) is after_response
    response.close()  # what the server does once the body is sent
    message.refresh_from_db()
    assert message.delivered_at is not None and message.attempts == 1
