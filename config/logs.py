"""Structured logs (docs/operations.md): with ``DOSSIER_LOG_FORMAT=json`` every record is one JSON object per line
carrying ``export_id``, ``run_id``, ``error_code`` and ``request_id`` wherever they apply.

Fields come from a record's ``extra``, else from the context bound with ``log_context`` (the request middleware
binds ``request_id``; packaging binds ``export_id`` and ``run_id``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

CONTEXT_FIELDS = ("request_id", "export_id", "run_id", "error_code")
_context: ContextVar[dict[str, Any]] = ContextVar("dossier_log_context", default={})  # noqa: B039 - never mutated
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach ``fields`` to every record logged inside the block (nested blocks add to the outer ones)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context (and a Django request's id) onto each record that does not carry the field."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        request = getattr(record, "request", None)
        request_id = getattr(request, "request_id", None)
        if not hasattr(record, "request_id") and request_id:
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class RequestIdMiddleware:
    """Takes a well-formed ``X-Request-ID`` from the client (or makes one), binds it to the request's logs and
    returns it on the response."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        with log_context(request_id=request.request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` setting: plain text lines, or JSON lines when ``log_format`` is ``json``."""
    formatters = {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "config.logs.ContextFilter"}},
        "formatters": formatters,
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "plain",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # pikepdf announces its qpdf log bridge at INFO on import: not an event of ours.
        "loggers": {"django.db.backends": {"level": "WARNING"}, "pikepdf": {"level": "WARNING"}},
    }
