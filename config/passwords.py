"""Password verification on a low-priority thread.

Password hashers are slow on purpose (Django's PBKDF2 takes a few hundred milliseconds of CPU). On a busy host a
request that is hashing competes for the CPU with requests that hold row locks: the ladder being signed and the
audit-chain head, which every writer in the system waits for. A lock holder descheduled behind hashers stalls
everyone queued on its lock. So the hash runs on a per-process worker thread whose scheduling niceness is raised
(on Linux each thread has its own): when the CPU is contended, lock-holding work runs first and hashing takes
the leftover cycles. The request thread only waits; ``hashlib`` releases the GIL while it hashes.

``DOSSIER_PASSWORD_CHECK_NICENESS`` is how much the worker threads' niceness is raised (0 checks in the calling
thread, as Django does). Platforms without per-thread priorities check in the calling thread too. With
``DOSSIER_PASSWORD_CHECK_IDLE_POLICY`` the threads also run under Linux's ``SCHED_IDLE`` policy: a request thread
that wakes up (a query has answered) then takes the CPU from a hasher at once instead of waiting for the end of
the hasher's time slice, which a raised niceness alone does not guarantee.

Both are off by default since passwords are Argon2id (config/hashers.py: ~25 ms of CPU instead of PBKDF2's
~600 ms) and the hash pool below bounds how many run at once. On a saturated host a deprioritised hasher barely
runs at all: in ``benchmarks/bench_load.py`` at 32 clients, password checks under SCHED_IDLE and niceness +10 took
8 s at the median and some waited past the slot timeout (503 ``busy``), against under 1 s at request priority.
They remain available for hosts where hashing is heavier.

A bounded hash pool: at most ``DOSSIER_PASSWORD_CHECK_SLOTS`` checks hash at once in a process (0, the default:
the host's cores divided by ``WEB_CONCURRENCY``, the web workers per host, at least one), so a burst of sign-ins
and signatures cannot take every core from the requests that hold locks. A check that finds no free slot waits up
to ``DOSSIER_PASSWORD_CHECK_WAIT_SECONDS`` for one, then is refused with 503 ``busy`` and ``Retry-After``
(nothing is counted: the password was not checked). Web workers are threaded (deploy/gunicorn.conf.py) and a
request waiting for a hash slot gives its work slot up meanwhile (config/middleware.py), so it holds a thread,
never the whole worker; the hash itself, CPU work like any other, runs under its request's work slot. Every
password check goes through here: the sign-in form, the admin, ``POST /api/auth/token``
(``PasswordCheckBackend``) and signing re-authentication.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import make_password, verify_password

from config.errors import ServerBusy
from config.middleware import work_slot_released


class PasswordCheckBusy(ServerBusy):
    default_message = "Too many password checks are running: try again in a moment."


# Seconds the current request spent in password checks, waiting for a slot included (PasswordTimingMiddleware).
_request_seconds: ContextVar[list[float] | None] = ContextVar("dossier_password_seconds", default=None)

# ((pid, niceness, idle policy, slots) it was built for, pool): a forked child, or a changed setting, gets a new one.
_pool: tuple[tuple[int, int, bool, int], ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()
# ((pid, slots), semaphore): at most `slots` hashes at once in this process.
_semaphore: tuple[tuple[int, int], threading.BoundedSemaphore] | None = None


def password_verify(user, raw_password: str) -> bool:
    """Whether ``raw_password`` is ``user``'s password. Like ``user.check_password`` (an outdated hash is upgraded
    and saved), with the hashing done in a bounded pool on a low-priority thread. Raises PasswordCheckBusy."""
    correct, must_update = _hash_in_pool(verify_password, raw_password, user.password)
    if correct and must_update:  # what Django's setter does, the new hash in the pool too; the write stays here
        user.password = _hash_in_pool(make_password, raw_password)
        user._password = None  # an upgrade is not a password change
        user.save(update_fields=["password"])
    return correct


def password_check_slots() -> int:
    """How many password checks may hash at once in this process."""
    configured = settings.DOSSIER_PASSWORD_CHECK_SLOTS
    if configured > 0:
        return configured
    web_workers = max(1, int(os.environ.get("WEB_CONCURRENCY") or 1))
    return max(1, (os.cpu_count() or 1) // web_workers)


class PasswordCheckBackend(ModelBackend):
    """Django's ModelBackend with its password check (and its dummy hash for unknown users, which keeps the
    answer's timing from telling whether the account exists) in the bounded pool."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user_model = get_user_model()
        if username is None:
            username = kwargs.get(user_model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            _hash_in_pool(make_password, password)
            return None
        if password_verify(user, password) and self.user_can_authenticate(user):
            return user
        return None


def _hash_in_pool(function, *args):
    """Run one hash under a slot (waiting at most DOSSIER_PASSWORD_CHECK_WAIT_SECONDS for one)."""
    began = time.perf_counter()
    slots = _slots()
    wait = settings.DOSSIER_PASSWORD_CHECK_WAIT_SECONDS
    try:
        if not slots.acquire(blocking=False):
            with work_slot_released():  # waiting for a hash slot needs no CPU: another request may work meanwhile
                if not slots.acquire(timeout=wait):
                    raise PasswordCheckBusy(retry_after_seconds=max(1, math.ceil(wait)))
        try:
            niceness = settings.DOSSIER_PASSWORD_CHECK_NICENESS
            if niceness <= 0 or not hasattr(os, "setpriority"):
                return function(*args)
            return _executor(niceness).submit(function, *args).result()
        finally:
            slots.release()
    finally:
        spent = _request_seconds.get()
        if spent is not None:
            spent.append(time.perf_counter() - began)


class PasswordTimingMiddleware:
    """With ``DOSSIER_SERVER_TIMING`` on, every response says how long the application worked on it
    (``Server-Timing: app;dur=<ms>``, from this middleware on: time queued for a worker thread is not in it) and a
    response that checked a password how long that took (``password;dur=<ms>``, waiting for a slot included), so
    a load test can tell the hash from the rest of the request (benchmarks/bench_load.py). Off by default."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.DOSSIER_SERVER_TIMING:
            return self.get_response(request)
        spent: list[float] = []
        token = _request_seconds.set(spent)
        began = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            _request_seconds.reset(token)
        app = f"app;dur={(time.perf_counter() - began) * 1000:.2f}"
        response["Server-Timing"] = f"password;dur={sum(spent) * 1000:.2f}, {app}" if spent else app
        return response


def _slots() -> threading.BoundedSemaphore:
    global _semaphore
    key = os.getpid(), password_check_slots()
    with _pool_lock:
        if _semaphore is None or _semaphore[0] != key:
            _semaphore = key, threading.BoundedSemaphore(key[1])
        return _semaphore[1]


def _executor(niceness: int) -> ThreadPoolExecutor:
    global _pool
    key = os.getpid(), niceness, settings.DOSSIER_PASSWORD_CHECK_IDLE_POLICY, password_check_slots()
    with _pool_lock:
        if _pool is None or _pool[0] != key:
            if _pool is not None and _pool[0][0] == key[0]:
                _pool[1].shutdown(wait=False)
            pool = ThreadPoolExecutor(key[3], "password-check", initializer=_lower_priority, initargs=key[1:3])
            _pool = key, pool
        return _pool[1]


def _lower_priority(niceness: int, idle: bool) -> None:
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):  # if not permitted, the checks still run, at normal priority
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):  # any thread may lower its own policy; if refused, niceness stays
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
