"""Deployment checks of `manage.py check --deploy` beyond Django's own (docs/threat-model.md)."""

import os

from django.conf import settings
from django.core import checks
from django.db import connections

UNSAFE_SOURCES = {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"}


@checks.register(checks.Tags.security, deploy=True)
def secret_key_from_environment(app_configs, **kwargs):
    if os.environ.get("SECRET_KEY"):
        return []
    return [
        checks.Warning(
            "SECRET_KEY is not set in the environment, so each host generates its own in var/secret_key.",
            hint="Set SECRET_KEY (and DOSSIER_SIGNING_KEY_SECRET) to the same values on every web and worker host: "
            "sessions, download links and the signing keys' encryption depend on them.",
            id="dossier.W001",
        )
    ]


@checks.register(checks.Tags.database, deploy=True)
def postgresql_in_production(app_configs, **kwargs):
    if connections["default"].vendor == "postgresql":
        return []
    return [
        checks.Warning(
            "The database is not PostgreSQL.",
            hint="Set DATABASE_URL=postgres://…: the triggers that keep the audit trail, signatures and approval "
            "history append-only exist only on PostgreSQL.",
            id="dossier.W002",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def strict_content_security_policy(app_configs, **kwargs):
    directives = (getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}).get("DIRECTIVES", {})
    loose = sorted(
        f"{name} {source}"
        for name in ("default-src", "script-src", "style-src")
        for source in directives.get(name) or ()
        if source in UNSAFE_SOURCES
    )
    if "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE and directives and not loose:
        return []
    return [
        checks.Warning(
            "The Content-Security-Policy is missing or allows inline code: " + (", ".join(loose) or "no policy"),
            hint="Keep csp.middleware.CSPMiddleware and a policy without 'unsafe-inline'/'unsafe-eval'; mark an "
            'inline block that cannot move to static/ with nonce="{{ request.csp_nonce }}".',
            id="dossier.W003",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def keyring_from_environment(app_configs, **kwargs):
    if not getattr(settings, "DOSSIER_ENCRYPTION_AT_REST", False) or os.environ.get("DOSSIER_KEYRING"):
        return []
    return [
        checks.Warning(
            "DOSSIER_KEYRING is not set, so stored artifacts and evidence are encrypted under a keyring generated "
            "in var/keyring.json on this host only.",
            hint="Set DOSSIER_KEYRING to the keyring JSON or its path (or an aws-kms keyring) on every web and "
            "worker host, and back it up apart from the storage (docs/encryption.md).",
            id="dossier.W004",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def tsa_roots_configured(app_configs, **kwargs):
    if not getattr(settings, "DOSSIER_TSA_URLS", None) or settings.DOSSIER_TSA_CA_FILE:
        return []
    return [
        checks.Warning(
            "DOSSIER_TSA_URLS is set without DOSSIER_TSA_CA_FILE, so timestamp tokens are stored without checking "
            "that they chain to a trusted TSA root.",
            hint="Set DOSSIER_TSA_CA_FILE to a PEM file of the TSAs' roots (docs/trusted-time.md).",
            id="dossier.W005",
        )
    ]
