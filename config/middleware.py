"""Middleware shared by every page and endpoint."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import Http404, HttpResponse, JsonResponse
from psycopg.errors import DeadlockDetected, SerializationFailure

from config.api import error_body
from config.errors import ServerBusy

# Ids are 64-bit signed integers in the database (BigAutoField); a larger one in a path names nothing.
MAX_ID = 2**63 - 1


class WorkSlotMiddleware:
    """At most ``DOSSIER_WEB_WORK_SLOTS`` requests of a web process run application code at once (0: no limit).

    A Dossier request is mostly Python holding the interpreter lock, and its transactions hold row locks while it
    works. Two threads of one process working at once only take turns on one interpreter, each waiting up to a
    switch interval after every database answer, so every request takes longer and holds its locks longer. Under a
    slot a request works alone; the worker's other threads still accept connections, read request lines and
    headers, and send responses (a download streams after its view has returned, without a slot), and a request
    gives its slot up while its client sends an upload's body (``work_slot_released``). A request that finds no
    slot free within ``DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS`` is answered 503 ``busy`` with ``Retry-After``, nothing
    done. deploy/gunicorn.conf.py sets the slots (the host's cores divided by the worker processes);
    docs/deployment.md, "Under load", has the figures. First in ``MIDDLEWARE``: the wait for a slot is queueing,
    like the wait for a thread, and not in ``Server-Timing``'s ``app``."""

    def __init__(self, get_response):
        self.get_response = get_response
        count = settings.DOSSIER_WEB_WORK_SLOTS
        self.slots = threading.BoundedSemaphore(count) if count > 0 else None

    def __call__(self, request):
        if self.slots is None:
            return self.get_response(request)
        slot = _WorkSlot(self.slots)
        if not slot.take():
            return _busy(request, retry_after=slot.retry_after)
        token = _current_slot.set(slot)
        try:
            return self.get_response(request)
        finally:
            _current_slot.reset(token)
            slot.give_up()


class _WorkSlot:
    """One request's hold on a slot of its process."""

    def __init__(self, slots: threading.BoundedSemaphore):
        self.slots, self.held = slots, False

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(settings.DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS / 10))

    def take(self) -> bool:
        self.held = self.slots.acquire(timeout=settings.DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS)
        return self.held

    def give_up(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()


_current_slot: ContextVar[_WorkSlot | None] = ContextVar("dossier_work_slot", default=None)


@contextmanager
def work_slot_released() -> Iterator[None]:
    """Run the block without the request's work slot: for waits that need no CPU and may be long, like a client
    sending an upload's body. The slot is taken back afterwards, waiting as a new request would (503 ``busy``
    raised if none frees up in time). Only outside a transaction: a request must not queue holding row locks."""
    slot = _current_slot.get()
    if slot is None or not slot.held or _in_atomic_block():
        yield
        return
    slot.give_up()
    try:
        yield
    finally:
        if not slot.take():
            raise ServerBusy(retry_after_seconds=slot.retry_after)


def _busy(request, *, retry_after: int) -> HttpResponse:
    details = {"retry_after_seconds": retry_after}
    return _unavailable(request, ServerBusy.code, ServerBusy.default_message, retry_after=retry_after, details=details)


def _unavailable(request, code: str, message: str, *, retry_after: int, details: dict | None = None) -> HttpResponse:
    """A 503 answered before or around the views: the error shape for the API, plain text for pages."""
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(error_body(code, message, details), status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    return response


class PathIdRangeMiddleware:
    """404 for an integer path parameter no row can have (``/sessions/99999999999999999999``), before the view
    hands it to the database, which would refuse to compare it (a 500). Applies to every URL pattern's ``int``
    converters."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        for value in (*view_args, *view_kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and not -MAX_ID - 1 <= value <= MAX_ID:
                raise Http404("No object has this id.")
        return None


class DatabaseReconnectMiddleware:
    """A dropped database connection (a restart, a failover, a killed backend) in the middle of a request.

    ``CONN_HEALTH_CHECKS`` replaces a connection that died between requests; this handles one that dies during a
    request. The broken connections are closed; a GET or HEAD, which changes nothing, is run once more on a fresh
    connection; anything else answers 503 ``database_unavailable`` (with ``Retry-After``), since its transaction
    was rolled back with the connection: nothing it asked for was committed. A deadlock or a serialization failure
    (PostgreSQL rolled the transaction back) is answered the same way, as 503 ``database_busy``, the connection
    kept. Inside an outer atomic block (a caller's transaction) nothing is retried. docs/operations.md, "Dropped
    database connections"; docs/architecture.md, "Lock order".
    """

    RETRIED = "_dossier_db_retried"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_GONE) or _in_atomic_block():
            return None
        busy = database_busy(exception)
        if not busy:  # a deadlock or a serialization failure leaves the connection usable
            _close_connections()
        if request.method not in ("GET", "HEAD") or getattr(request, self.RETRIED, False):
            return _database_unavailable(request, busy=busy)
        setattr(request, self.RETRIED, True)
        match = request.resolver_match
        try:
            response = match.func(request, *match.args, **match.kwargs)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response = response.render()
        except DATABASE_GONE as again:
            busy = database_busy(again)
            if not busy:
                _close_connections()
            return _database_unavailable(request, busy=busy)
        return response


DATABASE_GONE = (OperationalError, InterfaceError)
# PostgreSQL rolled the transaction back to resolve a conflict with another one; nothing of it was committed.
DATABASE_CONFLICTS = (DeadlockDetected, SerializationFailure)


def database_busy(exception: BaseException) -> bool:
    """Whether ``exception`` (Django's wrapper of a psycopg error) is a deadlock or a serialization failure."""
    return isinstance(exception, DATABASE_CONFLICTS) or isinstance(exception.__cause__, DATABASE_CONFLICTS)


def _in_atomic_block() -> bool:
    return any(conn.in_atomic_block for conn in connections.all(initialized_only=True))


def _close_connections() -> None:
    for conn in connections.all(initialized_only=True):
        with suppress(Exception):  # closing a broken connection may itself fail; it is discarded either way
            conn.close()


def _database_unavailable(request, *, busy: bool = False) -> HttpResponse:
    code, message = "database_unavailable", "The database connection was lost; nothing was changed. Try again."
    if busy:
        code, message = (
            "database_busy",
            "The database was busy with a conflicting change; nothing was changed. Try again.",
        )
    return _unavailable(request, code, message, retry_after=1)
