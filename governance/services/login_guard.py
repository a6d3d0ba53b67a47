"""The guessing limit shared by every password door: the login form, the admin login and POST /api/auth/token.

Failed password checks are counted per (username, client address) and per client address in fixed windows of
``DOSSIER_LOGIN_WINDOW_MINUTES``. Before a password is checked, one attempt is reserved on both counters with an
atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (PostgreSQL and SQLite): concurrent guesses queue on the
counter row, so no more than the limit ever reach the password hasher, and there is no check-then-act window. A
reservation past a limit is rolled back (refused attempts do not count) and answered 429 ``too_many_attempts``;
a correct password gives its reservation back. The signing lockout is separate (approvals/services/signing.py):
nothing here can stop a user from signing. See docs/authentication.md.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import connection, transaction
from django.db.models import F

from config.client_address import client_address
from config.errors import RateLimited
from config.humanize import duration_in_words
from config.passwords import PasswordCheckBusy
from governance.models import LoginFailureCounter


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    default_message = "Too many failed sign-in attempts."

    def __init__(self, *, retry_after_seconds: int):
        super().__init__(
            f"Too many failed sign-in attempts: try again in {duration_in_words(retry_after_seconds)}.",
            details={"retry_after_seconds": retry_after_seconds},
        )
        self.retry_after_seconds = retry_after_seconds
        self.headers = {"Retry-After": str(retry_after_seconds)}


@dataclass(frozen=True)
class LoginLimit:
    key: str
    limit: int


def login_limits(*, username: str, address: str) -> list[LoginLimit]:
    """The counters one attempt goes through, always in this order (so concurrent upserts never deadlock)."""
    who = hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return [
        LoginLimit(f"address:{address}", settings.DOSSIER_LOGIN_MAX_FAILURES_PER_ADDRESS),
        LoginLimit(f"user-address:{who}:{address}", settings.DOSSIER_LOGIN_MAX_FAILURES_PER_USER_ADDRESS),
    ]


def login_window(now: float | None = None) -> tuple[int, int]:
    """(window start in epoch seconds, seconds until it ends)."""
    now = time.time() if now is None else now
    length = max(1, settings.DOSSIER_LOGIN_WINDOW_MINUTES) * 60
    start = int(now // length) * length
    return start, max(1, math.ceil(start + length - now))


def _upsert_sql() -> str:
    q = connection.ops.quote_name
    table, key, start, attempts = q(LoginFailureCounter._meta.db_table), q("key"), q("window_start"), q("attempts")
    return (  # identifiers are ours, values are parameters
        f"INSERT INTO {table} ({key}, {start}, {attempts}) VALUES (%s, %s, 1) "  # noqa: S608
        f"ON CONFLICT ({key}, {start}) DO UPDATE SET {attempts} = {table}.{attempts} + 1 RETURNING {attempts}"
    )


def login_attempt_reserve(*, limits: list[LoginLimit]) -> int:
    """Reserve one password check on every counter; returns the window it was counted in. Raises
    TooManyAttempts, counting nothing, when any counter is already at its limit."""
    window_start, retry_after = login_window()
    sql = _upsert_sql()
    with transaction.atomic(), connection.cursor() as cursor:
        for item in limits:
            cursor.execute(sql, [item.key, window_start])
            (attempts,) = cursor.fetchone()
            if attempts > item.limit:
                raise TooManyAttempts(retry_after_seconds=retry_after)  # rolls the reservations back
    return window_start


def login_attempt_release(*, limits: list[LoginLimit], window_start: int) -> None:
    """Give back a reservation whose password was right: only failures count towards the limit."""
    LoginFailureCounter.objects.filter(
        key__in=[item.key for item in limits], window_start=window_start, attempts__gt=0
    ).update(attempts=F("attempts") - 1)


def password_authenticate(*, request, username: str, password: str):
    """``django.contrib.auth.authenticate`` behind the shared guessing limit: the user, or None for wrong
    credentials. Raises TooManyAttempts (429) before checking anything once a limit is reached."""
    limits = login_limits(username=username or "", address=client_address(request))
    window_start = login_attempt_reserve(limits=limits)
    try:
        user = authenticate(request=request, username=username, password=password)
    except PasswordCheckBusy:  # 503 busy: the password was never checked, so nothing counts
        login_attempt_release(limits=limits, window_start=window_start)
        raise
    if user is not None:
        login_attempt_release(limits=limits, window_start=window_start)
    return user


def login_counters_purge() -> int:
    """Delete counters of windows that have ended; returns how many rows went."""
    current, _ = login_window()
    deleted, _ = LoginFailureCounter.objects.filter(window_start__lt=current).delete()
    return deleted
