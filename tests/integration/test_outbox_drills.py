"""Fault drills for the transactional outbox and the degrading cache (docs/operations.md, "Broker down", "Cache
down"), on PostgreSQL, real Redis servers of their own (stopped and restarted here, never the shared one) and a
real Celery worker: a committed change is answered, its side effects wait in the outbox, and once the service
returns the relay delivers them, exactly once in effect. Each drill prints its recovery time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config import cache as degrading
from exports.models import ExportArtifact, NarrativeExport, PackagingRun
from exports.services.packaging import HANDLER_PACKAGE
from governance.models import OutboxMessage, UserPreference
from governance.selectors.preferences import viewer_time_zone, viewer_time_zone_refresh
from governance.services.outbox import HANDLER_TEAM_STATE_CHANGED, HANDLER_TIME_ZONES_FORGET, outbox_relay
from tests.approvals.factories import crew_for, published_snapshot
from tests.factories import PASSWORD
from tests.integration.conftest import wait_for
from tests.integration.redis_servers import redis_server

pytestmark = [pytest.mark.worker, pytest.mark.postgres]
SESSIONS = "/api/experiment-console/sessions"
BROKER_PORT, CACHE_PORT = 8201, 8202


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point this process's Celery app at another broker."""
    from config.celery import app

    def forget_pools() -> None:
        # Only drop the references: kombu keeps one pool per broker URL process-wide, and closing the usual
        # broker's pool would break every later test of this process.
        app._pool = None
        app.amqp._producer_pool = None

    previous = (app.conf.broker_url, app.conf.broker_write_url, app.conf.broker_read_url)
    forget_pools()
    app.conf.broker_url = app.conf.broker_write_url = app.conf.broker_read_url = url
    try:
        yield
    finally:
        forget_pools()
        app.conf.broker_url, app.conf.broker_write_url, app.conf.broker_read_url = previous


def relay_until_delivered(message_ids: list[int], *, timeout: float = 60) -> None:
    """What the periodic relay does, every half second instead of every 15 s."""

    def delivered() -> bool:
        outbox_relay()
        return not OutboxMessage.objects.filter(pk__in=message_ids, delivered_at__isnull=True).exists()

    wait_for(delivered, timeout=timeout, interval=0.5, what=f"the relay to deliver outbox messages {message_ids}")


def _export_awaiting_the_last_signature(crew, team) -> tuple[str, int]:
    published_snapshot()
    author = client_for(crew.author)
    execution = author.post(SESSIONS, {"title": "Stability study lot 9", "team": team.slug}, format="json").json()
    base = f"{SESSIONS}/{execution['id']}"
    note = author.post(
        "/api/notebook/entries", {"execution": execution["id"], "title": "Bench notes", "body": "All nominal."}
    ).json()
    created = author.post(
        f"{base}/exports/narrative", {"evidence": [{"kind": "notebook_entry", "id": note["id"]}]}, format="json"
    )
    assert created.status_code == 201, created.json()
    export_id = created.json()["id"]
    for user in (crew.reviewer, crew.qa):
        assert _approve(user, base, export_id).status_code == 200
    return base, export_id


def _approve(user, base: str, export_id: int):
    ladder = client_for(user).get(f"{base}/exports/narrative/{export_id}/approvals").json()["ladder"]
    active = next(stage for stage in ladder["stages"] if stage["status"] == "in_progress")
    return client_for(user).post(
        f"{base}/exports/narrative/{export_id}/approve",
        {
            "decision": "approve",
            "username": user.username,
            "password": PASSWORD,
            "meaning": "Approved",
            "expected_stage_id": active["id"],
        },
        format="json",
    )


def test_broker_down_during_the_last_approval(team, celery_worker_process, settings, tmp_path):
    settings.DOSSIER_OUTBOX_BACKOFF_SECONDS = 1
    crew = crew_for(team)
    with redis_server(BROKER_PORT, tmp_path / "broker") as broker, broker_at(broker.url):
        base, export_id = _export_awaiting_the_last_signature(crew, team)
        broker.stop()

        response = _approve(crew.compliance, base, export_id)
        assert response.status_code == 200, response.content  # committed, so answered
        assert NarrativeExport.objects.get(pk=export_id).status == "queued"
        message = OutboxMessage.objects.get(handler=HANDLER_PACKAGE, payload__export_id=export_id)
        assert message.delivered_at is None and message.attempts == 1 and message.last_error
        # The other side effects of the approval did not wait for the broker.
        assert not OutboxMessage.objects.filter(handler=HANDLER_TEAM_STATE_CHANGED, delivered_at__isnull=True).exists()
        assert not PackagingRun.objects.filter(export_id=export_id).exists()

        returned = time.monotonic()
        broker.start()
        worker = celery_worker_process(
            extra_env={"CELERY_BROKER_URL": broker.url, "ARTIFACT_ROOT": str(tmp_path / "artifacts")}
        )
        relay_until_delivered([message.pk])
        try:
            wait_for(
                lambda: NarrativeExport.objects.get(pk=export_id).status == "packaged",
                timeout=90,
                what="the worker to package the export",
            )
        except BaseException:
            print(worker.log()[-4000:])
            raise
        recovery = time.monotonic() - returned
        print(f"\nbroker down drill: recovered in {recovery:.1f} s from the broker's return to a packaged export")

        # A redelivery (a relay that died before recording the delivery) has no second effect.
        OutboxMessage.objects.filter(pk=message.pk).update(delivered_at=None, available_at=message.created_at)
        relay_until_delivered([message.pk])
        wait_for(
            lambda: worker.log().count("already_packaged") >= 1,
            timeout=30,
            what="the worker to receive the redelivered task",
        )
    assert ExportArtifact.objects.filter(export_id=export_id).count() == 1
    assert PackagingRun.objects.filter(export_id=export_id, status="succeeded").count() == 1


def _cache_at(settings, url: str) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.DegradingRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "drill",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1.0},
        }
    }


def test_cache_down_during_writes_and_reads(transactional_db, team, settings, tmp_path, monkeypatch):
    settings.DOSSIER_OUTBOX_BACKOFF_SECONDS = 1
    monkeypatch.setattr(degrading, "health", degrading._Health())
    crew = crew_for(team)
    reviewer = client_for(crew.reviewer)
    execution = client_for(crew.author).post(SESSIONS, {"title": "Run", "team": team.slug}, format="json").json()
    analytics = f"/api/governance/analytics?team={team.slug}"
    with redis_server(CACHE_PORT, tmp_path / "cache") as cache_server:
        _cache_at(settings, cache_server.url)
        assert reviewer.get(analytics)["X-Cache"] == "MISS"
        assert reviewer.get(analytics)["X-Cache"] == "HIT"
        assert viewer_time_zone_refresh(user=crew.reviewer) == "UTC"
        cache_server.stop()

        note = reviewer.post(f"{SESSIONS}/{execution['id']}/coaching-notes", {"body": "Check lot 9."}, format="json")
        assert note.status_code == 201, note.content
        pages = Client()
        pages.force_login(crew.reviewer)
        preference = pages.post("/accounts/preferences/", {"time_zone": "Asia/Kolkata"})
        assert preference.status_code == 302
        assert UserPreference.objects.get(user=crew.reviewer).time_zone == "Asia/Kolkata"
        read = reviewer.get(analytics)
        assert read.status_code == 200 and read["X-Cache"] == "MISS"
        token = APIClient().post("/api/auth/token", {"username": "rev", "password": PASSWORD}, format="json")
        assert token.status_code == 200 and token.json()["token"]

        pending = OutboxMessage.objects.filter(delivered_at__isnull=True)
        handlers = set(pending.values_list("handler", flat=True))
        assert {HANDLER_TEAM_STATE_CHANGED, HANDLER_TIME_ZONES_FORGET} <= handlers
        assert all(message.attempts >= 1 and message.last_error for message in pending)

        returned = time.monotonic()
        cache_server.start()  # with the entries it had: stale until the invalidations arrive
        time.sleep(degrading.RETRY_AFTER_SECONDS)
        assert reviewer.get(analytics)["X-Cache"] == "HIT"
        assert viewer_time_zone(user=crew.reviewer) == "UTC"

        relay_until_delivered(list(pending.values_list("pk", flat=True)))
        print(
            f"\ncache down drill: invalidations delivered {time.monotonic() - returned:.1f} s after the cache returned"
        )
        assert reviewer.get(analytics)["X-Cache"] == "MISS"
        assert viewer_time_zone(user=crew.reviewer) == "Asia/Kolkata"
