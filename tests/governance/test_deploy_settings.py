"""Production settings (docs/threat-model.md): `check --deploy` is clean and HTTPS is on unless switched off."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a production deployment sets (README.md, Configuration); nothing about HTTPS, which is on by default.
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 20 + "production-secret-key-with-enough-entropy-4f9a2b7c1d",
    "ALLOWED_HOSTS": "dossier.example.org",
    "DATABASE_URL": "postgres://dossier@db.example.org:5432/dossier",
    "CELERY_BROKER_URL": "redis://redis.example.org:6379/0",
    "REDIS_URL": "redis://redis.example.org:6379/1",
    "DOSSIER_KEYRING": '{"active":"k1","keys":{"k1":"' + "A" * 43 + '="}}',
}
SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
]


def _environment(tmp_path, **overrides) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "DOSSIER_HTTPS"} and key not in PRODUCTION
    }
    return {
        **inherited,
        **PRODUCTION,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DOSSIER_VAR_DIR": str(tmp_path),
        **overrides,
    }


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _settings_under(env: dict[str, str]) -> dict:
    code = (
        "import json; from django.conf import settings as s; "
        f"print(json.dumps({{name: getattr(s, name, None) for name in {SETTINGS!r}}}))"
    )
    result = _manage(env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("proxy", [None, "X-Forwarded-Proto"], ids=["direct", "behind-a-proxy"])
def test_check_deploy_is_clean_with_production_settings(tmp_path, proxy):
    env = _environment(tmp_path, **({"DOSSIER_PROXY_SSL_HEADER": proxy} if proxy else {}))
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_is_https_only_and_trusts_no_proxy_header_by_default(tmp_path):
    values = _settings_under(_environment(tmp_path))
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    # Without a configured proxy, a client's own X-Forwarded-Proto never makes a request count as HTTPS.
    assert values["SECURE_PROXY_SSL_HEADER"] is None

    proxied = _settings_under(_environment(tmp_path, DOSSIER_PROXY_SSL_HEADER="X-Forwarded-Proto"))
    assert proxied["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_make_run_serves_plain_http(tmp_path):
    values = _settings_under(_environment(tmp_path, DEBUG="1"))
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SESSION_COOKIE_SECURE"] is False and values["SECURE_HSTS_SECONDS"] == 0


def test_make_runs_embedded_defaults_migrate_and_seed_on_sqlite(tmp_path):
    """`make run` is SQLite with tasks in-process: every migration and the demo seed must work there too."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DOSSIER_HTTPS"}
    }
    environment |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DOSSIER_VAR_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
    }
    for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=environment, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "demo data ready" in done.stdout


def test_deploy_checks_name_what_production_is_missing(settings, monkeypatch):
    from config.checks import postgresql_in_production, secret_key_from_environment, strict_content_security_policy

    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert [w.id for w in secret_key_from_environment(None)] == ["dossier.W001"]
    monkeypatch.setenv("SECRET_KEY", PRODUCTION["SECRET_KEY"])
    assert secret_key_from_environment(None) == []

    from django.db import connections

    monkeypatch.setattr(connections["default"], "vendor", "sqlite")
    assert [w.id for w in postgresql_in_production(None)] == ["dossier.W002"]
    monkeypatch.setattr(connections["default"], "vendor", "postgresql")
    assert postgresql_in_production(None) == []

    assert strict_content_security_policy(None) == []
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {**directives, "script-src": ["'self'", "'unsafe-inline'"]}}
    (warning,) = strict_content_security_policy(None)
    assert warning.id == "dossier.W003" and "script-src 'unsafe-inline'" in warning.msg
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": directives}
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != "csp.middleware.CSPMiddleware"]
    assert [w.id for w in strict_content_security_policy(None)] == ["dossier.W003"]


def test_deploy_checks_want_a_keyring_from_the_environment(settings, monkeypatch):
    from config.checks import keyring_from_environment

    monkeypatch.delenv("DOSSIER_KEYRING", raising=False)
    settings.DOSSIER_ENCRYPTION_AT_REST = True
    (warning,) = keyring_from_environment(None)
    assert warning.id == "dossier.W004" and "var/keyring.json" in warning.msg
    monkeypatch.setenv("DOSSIER_KEYRING", PRODUCTION["DOSSIER_KEYRING"])
    assert keyring_from_environment(None) == []
