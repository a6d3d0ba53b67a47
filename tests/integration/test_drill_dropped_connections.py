"""Fault drill: PostgreSQL connections terminated while gunicorn serves traffic (docs/operations.md, "Dropped
database connections").

Only this test database's own connections are terminated (never the shared server's others). Reads answer 200
throughout (health checks replace connections that died between requests; a read whose connection dies under it
runs again); a write answers 201 or 503 ``database_unavailable``, and a 503 never hides a committed change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from knox.models import AuthToken

from exports.models import ExecutionEvent
from exports.services.executions import execution_create
from tests.integration.conftest import ROOT, database_url_for_current_test_db, wait_for

pytestmark = [pytest.mark.worker]

PORT = int(os.environ.get("DOSSIER_DRILL_PORT", "8221"))
DRILL_SECONDS = 8


def _start_gunicorn(log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_current_test_db(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DB_CONN_MAX_AGE": "60",  # connections live across requests, as in production
    }
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{PORT}",
        "--workers", "2", "--timeout", "60",
    ]  # fmt: skip
    log = log_path.open("ab")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


def _call(method: str, path: str, token: str, body: object = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"http://127.0.0.1:{PORT}{path}", data=data, method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class _Terminator(threading.Thread):
    """Terminates this database's other backends (the test's own connection aside) every few hundred
    milliseconds. A backend in the middle of COMMIT is spared: its client could not know whether the change
    committed (that needs idempotency keys)."""

    SQL = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s "
        "AND query NOT ILIKE 'commit%%'"
    )

    def __init__(self, spare_pid: int) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.terminated = 0
        self.spare_pid = spare_pid

    def run(self) -> None:
        s = connection.settings_dict
        with psycopg.connect(
            host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], password=s["PASSWORD"] or None,
            dbname=s["NAME"], autocommit=True,
        ) as admin:  # fmt: skip
            while not self.stop.wait(0.3):
                self.terminated += admin.execute(self.SQL, [self.spare_pid]).fetchone()[0]


def test_reads_survive_and_writes_never_hide_a_commit_when_connections_drop(transactional_db, member, team, tmp_path):
    scientist = member("scientist", username="sci")
    execution = execution_create(team=team, title="Drill", owner=scientist, protocol_template_key="assay")
    token = AuthToken.objects.create(user=scientist)[1]
    base = f"/api/experiment-console/sessions/{execution.pk}"
    server = _start_gunicorn(tmp_path / "gunicorn.log")
    try:
        wait_for(lambda: _reachable(base, token), timeout=60, what="gunicorn to answer")
        connection.ensure_connection()
        terminator = _Terminator(spare_pid=connection.connection.info.backend_pid)
        terminator.start()
        reads, writes = [], []
        deadline = time.monotonic() + DRILL_SECONDS
        n = 0
        while time.monotonic() < deadline:
            reads.append(_call("GET", base, token))
            reads.append(_call("GET", f"{base}/events", token))
            n += 1
            status = _call("POST", f"{base}/events", token, [{"event_type": "drill.write", "payload": {"n": n}}])
            writes.append((n, status))
        terminator.stop.set()
        terminator.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = (tmp_path / "gunicorn.log").read_text(errors="replace")
    committed = set(
        ExecutionEvent.objects.filter(execution=execution, event_type="drill.write").values_list(
            "payload__n", flat=True
        )
    )
    answered = {n for n, status in writes if status == 201}
    print(
        f"\n{terminator.terminated} backends terminated; {len(reads)} reads, {len(writes)} writes "
        f"({len(writes) - len(answered)} answered 503)"
    )
    assert terminator.terminated >= 10, "the drill terminated too few connections to mean anything"
    assert set(reads) == {200}, log[-3000:]
    assert {status for _, status in writes} <= {201, 503}, log[-3000:]
    assert committed == answered  # every 201 committed; no 503 hides a commit


def _reachable(base: str, token: str) -> bool:
    try:
        return _call("GET", base, token) == 200
    except OSError:
        return False
