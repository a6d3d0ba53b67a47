"""A database connection that drops during a request (docs/operations.md, "Dropped database connections"): a read
runs once more on a fresh connection; a write answers 503 ``database_unavailable`` and changed nothing. The
fault drill with real terminated backends is tests/integration/test_drill_dropped_connections.py."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import OperationalError

from exports.api import views
from exports.models import ExecutionEvent

# Outside a test transaction, as a request runs: the middleware never retries inside an atomic block.
in_request = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dropping(monkeypatch):
    """The execution lookup loses its connection the first ``times`` calls."""
    real = views.execution_get_for_user
    calls: list[int] = []

    def install(times: int) -> list[int]:
        def lookup(**kwargs):
            calls.append(1)
            if len(calls) <= times:
                raise OperationalError("server closed the connection unexpectedly")
            return real(**kwargs)

        monkeypatch.setattr(views, "execution_get_for_user", lookup)
        return calls

    return install


@in_request
def test_a_read_whose_connection_drops_is_answered_on_a_fresh_one(client_for, execution, dropping):
    calls = dropping(times=1)
    response = client_for(execution.owner).get(f"/api/experiment-console/sessions/{execution.pk}")
    assert response.status_code == 200 and response.json()["id"] == execution.pk
    assert len(calls) == 2


@in_request
def test_a_read_that_fails_twice_answers_503(client_for, execution, dropping):
    dropping(times=2)
    response = client_for(execution.owner).get(f"/api/experiment-console/sessions/{execution.pk}/events")
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"


@in_request
def test_a_write_whose_connection_drops_answers_503_and_changes_nothing(client_for, execution, dropping):
    calls = dropping(times=1)
    path = f"/api/experiment-console/sessions/{execution.pk}/events"
    response = client_for(execution.owner).post(path, [{"event_type": "step.started", "payload": {}}], format="json")
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "database_unavailable"
    assert len(calls) == 1 and not ExecutionEvent.objects.filter(event_type="step.started").exists()


def test_connections_are_health_checked():
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def test_db_pgbouncer_configures_transaction_pooling():
    import json
    import os
    import subprocess
    import sys

    probe = (
        "import json, django; django.setup(); from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(json.dumps([d['CONN_MAX_AGE'], d.get('DISABLE_SERVER_SIDE_CURSORS'), "
        "d.get('OPTIONS', {}).get('server_side_binding'), s.DOSSIER_PACKAGING_SESSION_LEASE]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": "postgres://dossier@pgbouncer:6432/dossier",
        "DB_PGBOUNCER": "1",
    }
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)  # noqa: S603
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [0, True, None, False]
