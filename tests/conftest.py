"""Shared fixtures, and the rule that CI never skips: a missing service fails the run loudly.

Set DOSSIER_REQUIRE_SERVICES=1 (``.ci/run`` does) and every test that would skip because PostgreSQL, Redis or
chromium is missing fails instead, and the session refuses to start unless DATABASE_URL is PostgreSQL and
Redis answers.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")  # Playwright's sync API runs an event loop in-thread.

STRICT = os.environ.get("DOSSIER_REQUIRE_SERVICES") == "1"
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def redis_available() -> str | None:
    """Return why Redis cannot be used, or None when it answers."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        return "CELERY_BROKER_URL is not a Redis URL"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at {url} does not answer: {exc}"
    return None


def postgres_missing() -> str | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return f"the database is {connection.vendor}, not PostgreSQL (set DATABASE_URL)"
    return None


def chromium_path() -> str | None:
    return next((path for path in CHROMIUM_CANDIDATES if os.path.exists(path)), None)


def unavailable(reason: str) -> None:
    if STRICT:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config):
    if not STRICT:
        return
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise pytest.UsageError("DOSSIER_REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL")
    reason = redis_available()
    if reason:
        raise pytest.UsageError(f"DOSSIER_REQUIRE_SERVICES=1 but {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") or item.get_closest_marker("worker"):
        reason = postgres_missing()
        if reason:
            unavailable(reason)
    if item.get_closest_marker("worker"):
        reason = redis_available()
        if reason:
            unavailable(reason)
    if item.get_closest_marker("browser") and chromium_path() is None:
        unavailable("Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(autouse=True)
def _isolated_environment(settings, tmp_path):
    """Each test gets its own artifact storage, encrypted at rest under its own keyring (docs/encryption.md), a
    clean cache and tasks run eagerly."""
    from django.core.cache import cache

    from config.celery import app

    artifacts = {
        "BACKEND": "exports.storage_backends.EncryptedFileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "artifacts")},
    }
    settings.DOSSIER_KEYRING = ""
    settings.DOSSIER_KEYRING_DEFAULT_PATH = tmp_path / "keyring.json"
    settings.STORAGES = {**settings.STORAGES, "artifacts": artifacts, "default": artifacts}
    settings.PROBLEMS_DIR = tmp_path / "problems"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    app.conf.task_always_eager = True
    settings.DOSSIER_OUTBOX_RELAY_AFTER_RESPONSE = False  # as with in-process tasks outside tests (config/settings.py)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _standard_roles_after_flush(request):
    """Transactional tests flush every table between tests, seeded roles included: put the standard ones back."""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
    if not (transactional or {"transactional_db", "live_server"} & set(request.fixturenames)):
        return
    request.getfixturevalue("transactional_db")
    from governance.choices import RoleKey
    from governance.models import Role

    for key, label in RoleKey.choices:
        Role.objects.get_or_create(key=key, defaults={"label": label})


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def team(db):
    from tests.factories import TeamFactory

    return TeamFactory(slug="alpha", name="Alpha Lab")


@pytest.fixture
def other_team(db):
    from tests.factories import TeamFactory

    return TeamFactory(slug="beta", name="Beta Lab")


@pytest.fixture
def member(team):
    """A user holding a role in ``team``: ``member("scientist")``."""
    from tests.factories import member_of

    def make(*roles: str, username: str | None = None, in_team=None):
        return member_of(in_team or team, *roles, username=username)

    return make


@pytest.fixture
def scientist(member):
    return member("scientist", username="sci")


SIGNING_PATHS = re.compile(
    r"^/api/(experiment-console/.*/exports/narrative/\d+/approve|governance/audit-reviews/\d+/complete)$"
)


@pytest.fixture
def client_for(api_client):
    """An API client acting as ``user``. Like a signing client, it gives both signature components (docs/part11.md):
    a signing body without ``"username"`` is sent with the user's own (``"username": ""`` gives none); the component
    rules themselves are tested with plain clients in tests/approvals/test_part11_signing.py."""
    real_post = api_client.post

    def post(path, data=None, *args, **kwargs):
        user = api_client.handler._force_user
        if SIGNING_PATHS.match(path) and isinstance(data, dict) and "username" not in data and user is not None:
            data = {**data, "username": user.get_username()}
        return real_post(path, data, *args, **kwargs)

    api_client.post = post

    def authenticate(user):
        api_client.force_authenticate(user)
        return api_client

    return authenticate


@pytest.fixture
def execution(team, scientist):
    from exports.services.executions import execution_create

    return execution_create(team=team, title="Assay run", owner=scientist, protocol_template_key="assay")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    path = chromium_path()
    return {
        **browser_type_launch_args,
        "executable_path": path or "/usr/lib/chromium/chromium",
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ],
    }


def which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        unavailable(f"the '{tool}' command is not installed")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto in server mode (S3 and KMS) on a free local port, for the whole run."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        pytest.skip("moto_server is not installed (uv sync --group dev)")
    port = int(os.environ.get("DOSSIER_TEST_MOTO_PORT") or _free_port())  # a fixed port where ports are assigned
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)  # noqa: S310 - local test server
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@dataclass
class LocalTsa:
    url: str
    directory: Path
    server: Any

    @property
    def root_pem(self) -> Path:
        return self.directory / "root.pem"

    def failing(self, fail: bool) -> None:
        """Answer every request with 503 (a TSA that is down) or serve again."""
        self.server.RequestHandlerClass.fail = fail


@pytest.fixture(scope="session")
def local_tsa(tmp_path_factory):
    """The repository's local RFC 3161 TSA (scripts/local_tsa.py, openssl-backed) on a free port."""
    which("openssl")
    spec = importlib.util.spec_from_file_location("local_tsa", Path(__file__).parents[1] / "scripts" / "local_tsa.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.serve(host="127.0.0.1", port=0, directory=tmp_path_factory.mktemp("tsa"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tsa = LocalTsa(
        url=f"http://127.0.0.1:{server.server_address[1]}/",
        directory=server.RequestHandlerClass.directory,
        server=server,
    )
    yield tsa
    server.shutdown()
    server.server_close()


@pytest.fixture
def trusted_time(settings, local_tsa):
    """Trusted time on, against the local TSA (which serves, until a test makes it fail)."""
    from governance.services import timestamps

    settings.DOSSIER_TSA_URLS = [local_tsa.url]
    settings.DOSSIER_TSA_CA_FILE = str(local_tsa.root_pem)
    settings.DOSSIER_TSA_TIMEOUT_SECONDS = 5
    timestamps._roots_from.cache_clear()
    local_tsa.failing(False)
    yield local_tsa
    local_tsa.failing(False)
