"""A real Celery worker process against Redis and the PostgreSQL test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]


def database_url_for_current_test_db() -> str:
    from django.db import connection

    s = connection.settings_dict
    user = quote(s.get("USER") or "")
    password = f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


@dataclass
class WorkerProcess:
    queue: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)


def start_worker(
    queue: str, log_path: Path, extra_env: dict[str, str] | None = None, *, cwd: Path = ROOT, name: str | None = None
) -> WorkerProcess:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_current_test_db(),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,  # what the worker itself sends (a takeover's dispatch) stays in the test
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", queue,
        "-n", f"{name or queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
    ]  # fmt: skip
    log = log_path.open("ab")
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    worker = WorkerProcess(queue, process, log_path)
    deadline = time.monotonic() + 60
    while "ready." not in worker.log():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail(f"Celery worker did not start:\n{worker.log()[-4000:]}")
        time.sleep(0.2)
    return worker


@pytest.fixture
def celery_queue(transactional_db) -> Iterator[str]:
    """Tasks sent during the test go through the broker to a unique queue (no eager execution)."""
    from config.celery import app

    queue = f"test-{uuid.uuid4().hex[:10]}"
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    _forget_routing(app)
    yield queue
    app.conf.task_always_eager, app.conf.task_default_queue = previous
    _forget_routing(app)


def _forget_routing(app) -> None:
    """Celery caches the queue declarations and router built from the first default queue it saw; drop them so
    the next message goes to this test's queue, not an earlier test's."""
    for name in ("queues", "default_queue", "router", "default_exchange"):
        app.amqp.__dict__.pop(name, None)


@pytest.fixture
def celery_worker_process(celery_queue, tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start one or more real workers on the test's queue: ``worker = celery_worker_process()``."""
    started: list[WorkerProcess] = []

    from exports.encryption import keyring_file

    def start(extra_env: dict[str, str] | None = None) -> WorkerProcess:
        env = {"DOSSIER_KEYRING": keyring_file(), **(extra_env or {})}  # the test's own keyring (docs/encryption.md)
        worker = start_worker(celery_queue, tmp_path / f"worker-{len(started)}.log", env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill(signal.SIGTERM)


def wait_for(predicate: Callable[[], bool], *, timeout: float = 60, interval: float = 0.25, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
