"""Password verification on a low-priority thread.

Password hashers are slow on purpose (Django's PBKDF2 takes a few hundred milliseconds of CPU). On a busy host a
request that is hashing competes for the CPU with requests that hold row locks: the ladder being signed and the
audit-chain head, which every writer in the system waits for. A lock holder descheduled behind hashers stalls
everyone queued on its lock. So the hash runs on a per-process worker thread whose scheduling niceness is raised
(on Linux each thread has its own): when the CPU is contended, lock-holding work runs first and hashing takes
the leftover cycles. The request thread only waits; ``hashlib`` releases the GIL while it hashes.

``DOSSIER_PASSWORD_CHECK_NICENESS`` is how much the worker threads' niceness is raised (0 checks in the calling
thread, as Django does). Platforms without per-thread priorities check in the calling thread too. With
``DOSSIER_PASSWORD_CHECK_IDLE_POLICY`` (on by default) the threads also run under Linux's ``SCHED_IDLE`` policy:
a request thread that wakes up (a query has answered) then takes the CPU from a hasher at once instead of
waiting for the end of the hasher's time slice, which a raised niceness alone does not guarantee. Idle-policy
threads still get a small share of a busy CPU, so a password check is slowed down, never starved.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.contrib.auth.hashers import verify_password

# ((pid, niceness, idle policy) it was built for, pool): a forked child, or a changed setting, gets a new one.
_pool: tuple[tuple[int, int, bool], ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def password_verify(user, raw_password: str) -> bool:
    """Whether ``raw_password`` is ``user``'s password. Like ``user.check_password`` (an outdated hash is upgraded
    and saved), with the hashing done on a low-priority thread."""
    niceness = settings.DOSSIER_PASSWORD_CHECK_NICENESS
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return user.check_password(raw_password)
    correct, must_update = _executor(niceness).submit(verify_password, raw_password, user.password).result()
    if correct and must_update:  # what Django's setter does; the database write stays on the request's thread
        user.set_password(raw_password)
        user._password = None  # an upgrade is not a password change
        user.save(update_fields=["password"])
    return correct


def _executor(niceness: int) -> ThreadPoolExecutor:
    global _pool
    key = os.getpid(), niceness, settings.DOSSIER_PASSWORD_CHECK_IDLE_POLICY
    with _pool_lock:
        if _pool is None or _pool[0] != key:
            if _pool is not None and _pool[0][0] == key[0]:
                _pool[1].shutdown(wait=False)
            workers = max(2, os.cpu_count() or 2)
            pool = ThreadPoolExecutor(workers, "password-check", initializer=_lower_priority, initargs=key[1:])
            _pool = key, pool
        return _pool[1]


def _lower_priority(niceness: int, idle: bool) -> None:
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):  # if not permitted, the checks still run, at normal priority
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):  # any thread may lower its own policy; if refused, niceness stays
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
