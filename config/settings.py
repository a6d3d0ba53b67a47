"""Settings for Dossier, read from the environment.

Every value has an embedded default that needs no server: SQLite under ``var/``, Celery tasks run eagerly
in-process, a local-memory cache and filesystem storage. Production sets DATABASE_URL, CELERY_BROKER_URL,
REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and the storage variables; see README.md.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONCE, NONE, SELF

from config.env import env_bool, env_float, env_int, env_list, env_str, persistent_secret
from config.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DOSSIER_VAR_DIR", str(BASE_DIR / "var")))
PROBLEMS_DIR = Path(env_str("DOSSIER_PROBLEMS_DIR", str(BASE_DIR / "problems")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or persistent_secret(VAR_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "config.apps.DossierConfig",
    "django_celery_beat",
    "governance",
    "exports",
    "approvals",
    "analytics",
]

MIDDLEWARE = [
    "config.middleware.WorkSlotMiddleware",
    "config.logs.RequestIdMiddleware",
    "config.passwords.PasswordTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "governance.middleware.ViewerTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "governance.middleware.PasswordExpiryMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.PathIdRangeMiddleware",
    "config.middleware.DatabaseReconnectMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The `inert` filter (docs/text-policy.md) on every page without a {% load %}.
            "builtins": ["config.templatetags"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'dossier.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
else:
    # Django's PostgreSQL backend, running each transaction's before-commit work (the audit append) just before its
    # COMMIT, so the audit-chain head is the last lock a transaction takes (docs/architecture.md, "Lock order").
    DATABASES["default"]["ENGINE"] = "config.db"
    # A connection kept between requests is checked before its first query, so one PostgreSQL dropped (restart,
    # failover, idle timeout) is replaced instead of answering an error (docs/operations.md).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# DB_PGBOUNCER=1: behind PgBouncer in transaction-pooling mode (docs/operations.md, "PgBouncer"): no server-side
# cursors or prepared statements, no persistent connections, and the packaging lease held by heartbeat rows rather
# than session advisory locks, which a transaction pool cannot carry.
DB_PGBOUNCER = env_bool("DB_PGBOUNCER", False)
if DB_PGBOUNCER and DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
elif env_bool("DB_PREPARED_STATEMENTS", True) and DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # PostgreSQL plans a statement once per connection instead of on every execution (psycopg prepares a query
    # after 5 runs). Needs server-side parameter binding; set 0 behind a pooler that cannot carry prepared
    # statements (PgBouncer in transaction-pooling mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CACHE_URL = env_str("CACHE_URL", REDIS_URL)
if CACHE_URL:
    CACHES = {
        "default": {
            # Reads miss and writes are dropped while Redis is down (config/cache.py); short socket timeouts
            # bound what an unreachable host costs a request.
            "BACKEND": "config.cache.DegradingRedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "dossier"),
            "OPTIONS": {
                "socket_connect_timeout": env_float("CACHE_CONNECT_TIMEOUT", 0.5),
                "socket_timeout": env_float("CACHE_SOCKET_TIMEOUT", 2.0),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "dossier"}}

# --- Auth and sessions ----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "governance.passwords.PasswordHistoryValidator"},
]
# Argon2id at OWASP's m=19 MiB, t=2, p=1 (config/hashers.py); PBKDF2 hashes still verify and are rewritten as
# Argon2id at the user's next successful sign-in or signature (docs/authentication.md, "Password hashing").
PASSWORD_HASHERS = [
    "config.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
# Every password check (sign-in form, admin, API token, signature) goes through config/passwords.py: at most
# DOSSIER_PASSWORD_CHECK_SLOTS hashes at once per process (default: the host's cores divided by the web workers);
# a check that waits longer than DOSSIER_PASSWORD_CHECK_WAIT_SECONDS for a slot answers 503 `busy`.
AUTHENTICATION_BACKENDS = ["config.passwords.PasswordCheckBackend"]
DOSSIER_PASSWORD_CHECK_SLOTS = env_int("DOSSIER_PASSWORD_CHECK_SLOTS", 0)  # 0: cores // WEB_CONCURRENCY, at least 1
DOSSIER_PASSWORD_CHECK_WAIT_SECONDS = float(env_str("DOSSIER_PASSWORD_CHECK_WAIT_SECONDS", "10"))
# At most DOSSIER_WEB_WORK_SLOTS requests of a web process run application code at once (config/middleware.py; 0:
# no limit, as under runserver and in tests); deploy/gunicorn.conf.py sets it to the host's cores per worker process.
DOSSIER_WEB_WORK_SLOTS = env_int("DOSSIER_WEB_WORK_SLOTS", 0)
DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS = float(env_str("DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS", "30"))
# `Server-Timing: password;dur=<ms>` on responses that checked a password (load tests; off in production).
DOSSIER_SERVER_TIMING = env_bool("DOSSIER_SERVER_TIMING", False)
# 21 CFR 11.300 (docs/authentication.md, "Password aging and reuse"): a password older than this many days must be
# changed before anything else (0: passwords do not age); a new password may not be one of the last N.
DOSSIER_PASSWORD_MAX_AGE_DAYS = env_int("DOSSIER_PASSWORD_MAX_AGE_DAYS", 0)
DOSSIER_PASSWORD_HISTORY = env_int("DOSSIER_PASSWORD_HISTORY", 5)
# API tokens (django-rest-knox): stored as SHA-512 digests, expire after DOSSIER_TOKEN_TTL_HOURS, revoked by
# POST /api/auth/logout, a password change or the loss of the last membership (docs/authentication.md).
DOSSIER_TOKEN_TTL_HOURS = env_int("DOSSIER_TOKEN_TTL_HOURS", 24)
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=DOSSIER_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
# Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed; empty: the socket address
# is the client address (docs/authentication.md).
DOSSIER_TRUSTED_PROXIES = env_list("DOSSIER_TRUSTED_PROXIES", [])
for _proxy in DOSSIER_TRUSTED_PROXIES:
    ipaddress.ip_network(_proxy, strict=False)  # a typo stops the process at start, not every sign-in
# The guessing limit shared by the login form, the admin login and POST /api/auth/token: failed password
# checks per (username, client address) and per client address within a fixed window.
DOSSIER_LOGIN_WINDOW_MINUTES = env_int("DOSSIER_LOGIN_WINDOW_MINUTES", 15)
DOSSIER_LOGIN_MAX_FAILURES_PER_USER_ADDRESS = env_int("DOSSIER_LOGIN_MAX_FAILURES_PER_USER_ADDRESS", 5)
DOSSIER_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("DOSSIER_LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Transport and browser security (docs/threat-model.md) -------------------------------------------------------
# Production (DEBUG=0) is served over HTTPS: redirects, secure cookies and HSTS are on unless DOSSIER_HTTPS=0.
# `make run` sets DEBUG=0 with DOSSIER_HTTPS=0 and so serves plain http://127.0.0.1:8000 (`make dev`: DEBUG=1).
HTTPS = env_bool("DOSSIER_HTTPS", not DEBUG)
# The header a TLS-terminating proxy sets to tell the app the client spoke HTTPS, e.g. "X-Forwarded-Proto" (value
# "https"). Unset by default: then any client could claim HTTPS with that header. Set it only when every request
# reaches the app through a proxy that overwrites the header.
_PROXY_SSL_HEADER = env_str("DOSSIER_PROXY_SSL_HEADER").strip()
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp): everything from our own origin, no inline script or style except elements
# carrying the per-response nonce (`{{ request.csp_nonce }}`, used by the API docs page), no plugins, no framing,
# forms post only to us. Pages keep their scripts and styles in static/.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- I18N -----------------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (served by the app through WhiteNoise; nothing from a CDN) -----------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Artifact storage -----------------------------------------------------------------------------------------
ARTIFACT_STORAGE_BACKEND = env_str("ARTIFACT_STORAGE_BACKEND", "filesystem")
ARTIFACT_ROOT = Path(env_str("ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
# Encryption at rest (docs/encryption.md): a storage property of both backends. DOSSIER_KEYRING is the keyring
# JSON or a path to it; empty, a development keyring is generated in var/keyring.json (check --deploy warns).
DOSSIER_ENCRYPTION_AT_REST = env_bool("DOSSIER_ENCRYPTION_AT_REST", True)
DOSSIER_KEYRING = env_str("DOSSIER_KEYRING")
DOSSIER_KEYRING_DEFAULT_PATH = VAR_DIR / "keyring.json"
_encrypted = "exports.storage_backends.Encrypted" if DOSSIER_ENCRYPTION_AT_REST else None
if ARTIFACT_STORAGE_BACKEND == "s3":
    _artifacts = {
        "BACKEND": f"{_encrypted}S3Storage" if _encrypted else "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME", "dossier-artifacts"),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME", "us-east-1"),
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    _artifacts = {
        "BACKEND": f"{_encrypted}FileSystemStorage"
        if _encrypted
        else "exports.storage_backends.TieredFileSystemStorage",
        "OPTIONS": {
            "location": str(ARTIFACT_ROOT),
            "file_permissions_mode": 0o640,
            "directory_permissions_mode": 0o750,
        },
    }
STORAGES = {
    "default": _artifacts,
    "artifacts": _artifacts,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
FILE_UPLOAD_HANDLERS = [
    "exports.uploads.HashingUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR") or None
DOSSIER_MAX_UPLOAD_BYTES = env_int("DOSSIER_MAX_UPLOAD_BYTES", 2 * 1024**3)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)

# --- REST API -------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # An expired password is 403 password_expired everywhere but the password change and logout endpoints.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "governance.permissions.PasswordCurrent",
    ],
    # NUL and lone surrogates are refused with 400 invalid_text (docs/text-policy.md). Bodies are JSON, as the
    # schema says; only the upload endpoint takes multipart (415 for anything else, docs/api-schema.md).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Dossier API",
    "DESCRIPTION": "Governed narrative exports: executions, evidence, approval ladders and signed bundles.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "EvidenceKindEnum": "exports.choices.EvidenceKind",
        "TemplateStatusEnum": "governance.choices.TemplateStatus",
        "BaselineStatusEnum": "governance.choices.BaselineStatus",
        "ClassificationEnum": "governance.choices.Classification",
        "AuditReviewStatusEnum": "approvals.choices.AuditReviewStatus",
    },
}

# --- Celery ---------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
if not CELERY_BROKER_URL:
    # Tasks run in-process; an in-memory broker keeps kombu from looking for one on localhost.
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Where tasks go unless routed (workers consume it by default); the takeover timer in every worker sends here too.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 15 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 20 * 60)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Packaging acks late and a lost worker's message is rejected back to the queue; Redis redelivers an unacked
# message after the visibility timeout, which stays above the packaging hard time limit so a live worker's message
# is never handed to a second one. Lost workers are taken over within seconds by the heartbeat lease instead
# (docs/operations.md, "Dead worker"); the redelivery is only a backstop.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Periodic tasks, created in the database by `manage.py setup_schedules` (name: task, interval seconds).
DOSSIER_SCHEDULES: dict[str, dict[str, Any]] = {
    "audit-chain-verification": {"task": "governance.verify_audit_chain", "every": timedelta(days=1)},
    "exports-sweep-stuck": {"task": "exports.sweep_stuck_exports", "every": timedelta(minutes=5)},
    "exports-packaging-takeover": {"task": "exports.take_over_stale_packaging", "every": timedelta(seconds=15)},
    "approval-sla-monitor": {"task": "approvals.monitor_narrative_approval_slas", "every": timedelta(minutes=15)},
    "login-counters-purge": {"task": "governance.purge_login_counters", "every": timedelta(hours=1)},
    "governance-event-feed": {"task": "exports.export_governance_events", "every": timedelta(hours=1)},
    "trusted-timestamps-fetch": {"task": "governance.fetch_timestamps", "every": timedelta(minutes=1)},
    "audit-chain-checkpoint": {"task": "exports.checkpoint_audit_chain", "every": timedelta(days=1)},
    "outbox-relay": {"task": "exports.relay_outbox", "every": timedelta(seconds=15)},
    "retention-enforcement": {"task": "exports.enforce_retention", "every": timedelta(days=1)},
    "approval-ladder-expiry": {"task": "approvals.expire_open_ladders", "every": timedelta(minutes=15)},
    "artifact-fixity": {"task": "exports.verify_artifacts", "every": timedelta(days=1)},
    "storage-lifecycle": {"task": "exports.storage_lifecycle", "every": timedelta(days=1)},
    # Opens each team's audit-trail review for the month just ended: runs daily, opens a month's reviews once.
    "audit-trail-reviews": {"task": "approvals.schedule_audit_reviews", "every": timedelta(days=1)},
}
# Fixity checks and storage tiers (docs/storage-tiers-and-fixity.md). DOSSIER_FIXITY_SAMPLE: how many objects the
# daily check re-hashes, checked longest ago first (unset: all). DOSSIER_STORAGE_TIERS: the age in days at which an
# object moves to each tier (unset tier: never). On S3 a tier is a storage class of the same key; on the filesystem
# a root per tier (DOSSIER_TIER_ROOTS, default ``.tiers/<tier>/`` under ARTIFACT_ROOT).
DOSSIER_FIXITY_SAMPLE = env_int("DOSSIER_FIXITY_SAMPLE", 0) or None
DOSSIER_STORAGE_TIERS: dict[str, int] = {
    "warm": env_int("DOSSIER_STORAGE_WARM_AFTER_DAYS", 30),
    "cold": env_int("DOSSIER_STORAGE_COLD_AFTER_DAYS", 365),
}
DOSSIER_TIER_ROOTS: dict[str, str] = {
    tier: root
    for tier, root in (("warm", env_str("DOSSIER_TIER_ROOT_WARM")), ("cold", env_str("DOSSIER_TIER_ROOT_COLD")))
    if root
}
DOSSIER_S3_TIER_STORAGE_CLASSES = {"hot": "STANDARD", "warm": "STANDARD_IA", "cold": "GLACIER_IR"}

# --- Trusted time (docs/trusted-time.md) ----------------------------------------------------------------------
# RFC 3161 time-stamping authorities, tried in order; empty = trusted timestamps are off. DOSSIER_TSA_CA_FILE is
# a PEM file of the roots their certificates chain to: replies are verified against it and it is published at
# /api/exports/tsa-certificates with the TSA certificates seen, for offline `openssl ts -verify`.
DOSSIER_TSA_URLS = env_list("DOSSIER_TSA_URLS", [])
DOSSIER_TSA_CA_FILE = env_str("DOSSIER_TSA_CA_FILE", "")
DOSSIER_TSA_TIMEOUT_SECONDS = env_int("DOSSIER_TSA_TIMEOUT_SECONDS", 10)

# --- Transactional outbox (docs/architecture.md, "The outbox") ------------------------------------------------
# A claimed message is another relay's again after this long (a relay that died mid-delivery).
DOSSIER_OUTBOX_CLAIM_SECONDS = env_int("DOSSIER_OUTBOX_CLAIM_SECONDS", 300)
# A failed delivery waits BACKOFF * 2^(attempts-1) seconds, at most BACKOFF_MAX; it is retried until delivered.
DOSSIER_OUTBOX_BACKOFF_SECONDS = env_int("DOSSIER_OUTBOX_BACKOFF_SECONDS", 5)
DOSSIER_OUTBOX_BACKOFF_MAX_SECONDS = env_int("DOSSIER_OUTBOX_BACKOFF_MAX_SECONDS", 300)
DOSSIER_OUTBOX_BATCH_SIZE = env_int("DOSSIER_OUTBOX_BATCH_SIZE", 100)
DOSSIER_OUTBOX_RELAY_LIMIT = env_int("DOSSIER_OUTBOX_RELAY_LIMIT", 5000)
# A request's messages are relayed after its response has been sent (the client waits for no broker, cache or
# mail server), unless tasks run in-process: then a signature's packaging is done before the answer, as a demo expects.
DOSSIER_OUTBOX_RELAY_AFTER_RESPONSE = env_bool("DOSSIER_OUTBOX_RELAY_AFTER_RESPONSE", not CELERY_TASK_ALWAYS_EAGER)
# Delivered messages are kept this long (the window in which an e-mail's dedupe key is remembered), then pruned.
DOSSIER_OUTBOX_RETAIN_DAYS = env_int("DOSSIER_OUTBOX_RETAIN_DAYS", 7)
# Housekeeping callables (dotted paths, no arguments) that the `exports.relay_outbox` task runs after each relay,
# e.g. taking over packaging leases whose heartbeat stopped. Errors are logged; one failing does not stop the rest.
DOSSIER_OUTBOX_AFTER_RELAY: list[str] = ["exports.services.packaging.packaging_takeover_stale"]

# --- Email ----------------------------------------------------------------------------------------------------
# Without a mail server, messages are written as files under var/mail/ (one file per message), not to the console.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = Path(env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail")))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "dossier@biolabs.local")
GOVERNANCE_ESCALATION_EMAIL = env_str("GOVERNANCE_ESCALATION_EMAIL", "governance-ops@biolabs.local")

# --- Product settings -----------------------------------------------------------------------------------------
DEMO_PASSWORD = env_str("DEMO_PASSWORD", "demo-pass")

# DOSSIER_LOG_FORMAT=json: one JSON object per line with export_id, run_id, error_code, request_id (config/logs.py).
DOSSIER_LOG_FORMAT = env_str("DOSSIER_LOG_FORMAT", "plain")
LOGGING = logging_config(log_format=DOSSIER_LOG_FORMAT, level=env_str("LOG_LEVEL", "INFO"))
DOSSIER_MAX_EVENTS_PER_REQUEST = env_int("DOSSIER_MAX_EVENTS_PER_REQUEST", 5000)

# Demo data, seeded app by app (lowest first) by `manage.py seed_demo`.
DOSSIER_DEMO_SEEDERS = ["governance.demo.seed", "exports.demo.seed", "approvals.demo.seed", "analytics.demo.seed"]

# Extension points of the exports app (see exports/hooks.py). Packaging with no gate is refused.
DOSSIER_PACKAGING_GATES: list[str] = ["approvals.guardrails.packaging_gate"]
DOSSIER_EXPORT_CREATED_HOOKS: list[str] = ["approvals.hooks.export_created"]
DOSSIER_EXPORT_REPRESENTATION_HOOKS: list[str] = ["approvals.hooks.export_representation"]
DOSSIER_TEAM_DATA_SECTIONS: list[str] = ["approvals.hooks.team_data_sections"]  # docs/team-data.md
# Dotted path of ``provider(export) -> exports.hooks.ApprovalRecord`` (signatures + approvals.json) used when
# packaging; empty = the bundle carries an empty approval record.
DOSSIER_APPROVAL_RECORD_PROVIDER = env_str("DOSSIER_APPROVAL_RECORD_PROVIDER", "approvals.hooks.approval_record")
# Extension point of governance (see governance/hooks.py): the execution a baseline is proposed from.
DOSSIER_EXECUTION_RESOLVER = "exports.selectors.executions.execution_reference_for_user"

# --- Narrative exports and packaging --------------------------------------------------------------------------
# Bundles are .tar.zst (zstd level 3); "gzip" gives .tar.gz for consumers without zstd.
DOSSIER_ARTIFACT_COMPRESSION = env_str("DOSSIER_ARTIFACT_COMPRESSION", "zstd")
# Retention of packaged artifacts when the export's template snapshot names none.
DOSSIER_ARTIFACT_RETENTION_DAYS = env_int("DOSSIER_ARTIFACT_RETENTION_DAYS", 3650)
DOSSIER_BUNDLE_SOURCE_ORGANIZATION = env_str("DOSSIER_BUNDLE_SOURCE_ORGANIZATION", "Dossier")
DOSSIER_DOWNLOAD_LINK_TTL_SECONDS = env_int("DOSSIER_DOWNLOAD_LINK_TTL_SECONDS", 900)
# Exports queued (or packaging with no live worker) for longer than this are re-dispatched by the sweeper.
DOSSIER_PACKAGING_STUCK_AFTER_SECONDS = env_int("DOSSIER_PACKAGING_STUCK_AFTER_SECONDS", 600)
# A dedicated queue for packaging (workers then need `-Q celery,<queue>`); empty = the default queue.
DOSSIER_PACKAGING_QUEUE = env_str("DOSSIER_PACKAGING_QUEUE")
DOSSIER_PACKAGING_SOFT_TIME_LIMIT = env_int("DOSSIER_PACKAGING_SOFT_TIME_LIMIT", 50 * 60)
DOSSIER_PACKAGING_TIME_LIMIT = env_int("DOSSIER_PACKAGING_TIME_LIMIT", 55 * 60)
DOSSIER_PACKAGING_MAX_RETRIES = env_int("DOSSIER_PACKAGING_MAX_RETRIES", 5)
# The packaging lease (docs/architecture.md, "Packaging leases"): a running attempt touches its heartbeat this
# often; one whose heartbeat is older than the stale age is taken over, which every worker checks this often.
DOSSIER_PACKAGING_HEARTBEAT_SECONDS = env_int("DOSSIER_PACKAGING_HEARTBEAT_SECONDS", 5)
DOSSIER_PACKAGING_STALE_AFTER_SECONDS = env_int("DOSSIER_PACKAGING_STALE_AFTER_SECONDS", 30)
DOSSIER_PACKAGING_TAKEOVER_EVERY_SECONDS = env_int("DOSSIER_PACKAGING_TAKEOVER_EVERY_SECONDS", 15)
# The lease is a PostgreSQL session advisory lock (exact: it dies with the holder's connection) unless the
# connections go through a transaction pool; then the heartbeat row alone is the lease.
DOSSIER_PACKAGING_SESSION_LEASE = env_bool("DOSSIER_PACKAGING_SESSION_LEASE", not DB_PGBOUNCER)
# Upper bound on evidence read speed while packaging, in bytes per second (0 = unlimited): keeps a large
# packaging run from saturating shared storage.
DOSSIER_PACKAGING_READ_LIMIT_BPS = env_int("DOSSIER_PACKAGING_READ_LIMIT_BPS", 0)
# The rendition data/dossier.pdf (docs/exports.md, "The rendition"): the exact font files it embeds (Latin,
# Cyrillic, Greek; Debian's fonts-dejavu-core, installed by scripts/bootstrap.sh; never a font search), and the
# time allowed to compile one part of it.
DOSSIER_PDF_FONT_FILES = env_list(
    "DOSSIER_PDF_FONT_FILES",
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    ],
)
DOSSIER_PDF_PART_TIMEOUT_SECONDS = env_int("DOSSIER_PDF_PART_TIMEOUT_SECONDS", 600)
# Timeline parts compiled at once (one process each, up to about 300 MB) for timelines over 100 pages; more than
# one only pays on a worker with idle cores.
DOSSIER_PDF_PROCESSES = env_int("DOSSIER_PDF_PROCESSES", 1)
# Secret the signing keys' encryption key is derived from (HKDF-SHA256); defaults to SECRET_KEY.
DOSSIER_SIGNING_KEY_SECRET = env_str("DOSSIER_SIGNING_KEY_SECRET") or SECRET_KEY
# Redaction applied when a narrative is rendered (docs/exports.md, "Redaction"; docs/redaction.md): strategy
# label|mask|partial, per-type overrides, and an optional JSON file of custom rules. The policy in force is stored on
# each export. Uploaded text files (CSV, JSON, logs…) up to this size are redacted too; larger ones ship as uploaded.
DOSSIER_REDACTION_MAX_FILE_BYTES = env_int("DOSSIER_REDACTION_MAX_FILE_BYTES", 16 * 1024 * 1024)
DOSSIER_REDACTION: dict[str, Any] = {
    "strategy": env_str("DOSSIER_REDACTION_STRATEGY", "label"),
    "overrides": {},
    "rules_file": env_str("DOSSIER_REDACTION_RULES_FILE") or None,
}
CELERY_TASK_ROUTES = (
    {"exports.package_execution_narrative_export": {"queue": DOSSIER_PACKAGING_QUEUE}}
    if DOSSIER_PACKAGING_QUEUE
    else {}
)

# The template used when neither the protocol nor the team has an assignment.
DOSSIER_DEFAULT_TEMPLATE_KEY = env_str("DOSSIER_DEFAULT_TEMPLATE_KEY", "standard-release")

# --- Approvals (docs/approvals.md) -------------------------------------------------------------------------------
# Five failed signature passwords within fifteen minutes lock the signer out of signing.
# Password checks may hash on worker threads this much nicer than the request's (0, the default: in the request's
# thread at its priority), optionally under SCHED_IDLE; see config/passwords.py for why both are off by default.
DOSSIER_PASSWORD_CHECK_NICENESS = env_int("DOSSIER_PASSWORD_CHECK_NICENESS", 0)
DOSSIER_PASSWORD_CHECK_IDLE_POLICY = env_bool("DOSSIER_PASSWORD_CHECK_IDLE_POLICY", False)
APPROVALS_SIGNATURE_MAX_FAILURES = env_int("APPROVALS_SIGNATURE_MAX_FAILURES", 5)
APPROVALS_SIGNATURE_WINDOW_MINUTES = env_int("APPROVALS_SIGNATURE_WINDOW_MINUTES", 15)
# 21 CFR 11.200(a)(1) (docs/part11.md): the first signature of a session (API token or browser session) needs the
# username as well as the password, and so does the first after this many minutes without a signature.
DOSSIER_SIGNING_SESSION_MINUTES = env_int("DOSSIER_SIGNING_SESSION_MINUTES", 30)
# Annex 11 section 9 (docs/part11.md): a period's audit-trail review is due this many days after the period ends.
DOSSIER_AUDIT_REVIEW_DUE_DAYS = env_int("DOSSIER_AUDIT_REVIEW_DUE_DAYS", 14)
# Used when a template snapshot gives no SLA, and for exports created without any snapshot.
APPROVALS_DEFAULT_SLA_HOURS = env_int("APPROVALS_DEFAULT_SLA_HOURS", 48)
APPROVALS_ESCALATE_AFTER_HOURS = env_int("APPROVALS_ESCALATE_AFTER_HOURS", 24)
APPROVALS_DEFAULT_LADDER: dict[str, Any] = {
    "stages": [
        {"name": "Scientific review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"},
        {"name": "QA approval", "required_role": "qa_approver", "sla_hours": 48, "meaning": "Approved for release"},
        {"name": "Compliance sign-off", "required_role": "compliance", "sla_hours": 72, "meaning": "Compliant"},
    ],
    "sla_defaults": {"sla_hours": APPROVALS_DEFAULT_SLA_HOURS, "escalate_after_hours": APPROVALS_ESCALATE_AFTER_HOURS},
}
# Stages the SLA monitor handles per transaction; the number of queries grows with stages / batch, not stages.
APPROVALS_SLA_MONITOR_BATCH = env_int("APPROVALS_SLA_MONITOR_BATCH", 2000)

# --- Analytics and dashboards (docs/analytics.md) ---------------------------------------------------------------
# Governance analytics are cached this long per viewer and team scope (invalidated early on every state change).
ANALYTICS_CACHE_SECONDS = env_int("ANALYTICS_CACHE_SECONDS", 30)
ANALYTICS_DEFAULT_WINDOW_DAYS = env_int("ANALYTICS_DEFAULT_WINDOW_DAYS", 14)
ANALYTICS_MAX_WINDOW_DAYS = env_int("ANALYTICS_MAX_WINDOW_DAYS", 90)
# Newest preview summaries read for predicted vs actual durations.
ANALYTICS_PREVIEW_SAMPLE = env_int("ANALYTICS_PREVIEW_SAMPLE", 2000)
# Blocked exports listed with their guardrail forecast (most urgent first).
ANALYTICS_GUARDRAIL_LIMIT = env_int("ANALYTICS_GUARDRAIL_LIMIT", 12)
# Stages open longer than this on average are highlighted on the dashboard.
ANALYTICS_MEAN_OPEN_ALERT_MINUTES = env_int("ANALYTICS_MEAN_OPEN_ALERT_MINUTES", 60)
# The redaction tile is highlighted when at least this share of the window's exports had something redacted
# (secrets or personal data keep reaching narratives; docs/redaction.md).
ANALYTICS_REDACTION_ALERT_SHARE = float(env_str("ANALYTICS_REDACTION_ALERT_SHARE", "0.25"))
# The dashboard re-fetches its panels this often (at most 30 s, docs/analytics.md).
ANALYTICS_DASHBOARD_REFRESH_SECONDS = min(env_int("ANALYTICS_DASHBOARD_REFRESH_SECONDS", 15), 30)
ANALYTICS_QUEUE_PAGE_SIZE = env_int("ANALYTICS_QUEUE_PAGE_SIZE", 25)
# /metrics: refused to anonymous clients unless allowed here; scrapers may send `Authorization: Bearer <token>`.
METRICS_ALLOW_ANONYMOUS = env_bool("METRICS_ALLOW_ANONYMOUS", False)
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN")
# Audit actions counted by dossier_retention_pruned_total, and the category label each one counts under.
# Purges are written by enforce_retention (docs/records-lifecycle.md); artifact.expired rows predate it.
ANALYTICS_RETENTION_PRUNED_ACTIONS = {
    "narrative_export.artifact.expired": "artifact",
    "narrative_export.retention.purged": "artifact",
    "execution.evidence_purged": "evidence",
}

# --- Governance event feed (docs/feed.md) ---------------------------------------------------------------------
DOSSIER_FEED_BATCH_SIZE = env_int("DOSSIER_FEED_BATCH_SIZE", 1000)
DOSSIER_FEED_RUN_LIMIT = env_int("DOSSIER_FEED_RUN_LIMIT", 100_000)
DOSSIER_FEED_FILE_PATH = env_str("DOSSIER_FEED_FILE_PATH", str(VAR_DIR / "feed" / "governance-events.ndjson"))
DOSSIER_FEED_WEBHOOK_URL = env_str("DOSSIER_FEED_WEBHOOK_URL")
DOSSIER_FEED_WEBHOOK_SECRET = env_str("DOSSIER_FEED_WEBHOOK_SECRET")
DOSSIER_FEED_WEBHOOK_ATTEMPTS = env_int("DOSSIER_FEED_WEBHOOK_ATTEMPTS", 5)
DOSSIER_FEED_WEBHOOK_BACKOFF_SECONDS = float(env_str("DOSSIER_FEED_WEBHOOK_BACKOFF_SECONDS", "1.0"))
DOSSIER_FEED_WEBHOOK_TIMEOUT_SECONDS = float(env_str("DOSSIER_FEED_WEBHOOK_TIMEOUT_SECONDS", "10"))
