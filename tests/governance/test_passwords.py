"""Password checks on a low-priority worker thread (config/passwords.py)."""

import os
import threading

import pytest
from django.contrib.auth import get_user_model, hashers

from config import passwords

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(db):
    account = get_user_model().objects.create(username="signer")
    account.set_password("right-password")
    account.save()
    return account


@pytest.fixture
def observed(monkeypatch):
    """Record the thread and its niceness each time a hash is verified."""
    seen = []
    original = hashers.verify_password

    def spy(password, encoded, preferred="default"):
        thread = threading.get_native_id()
        seen.append((thread, os.getpriority(os.PRIO_PROCESS, thread), os.sched_getscheduler(thread)))
        return original(password, encoded, preferred)

    monkeypatch.setattr(passwords, "verify_password", spy)
    monkeypatch.setattr(hashers, "verify_password", spy)  # Django's own check_password path
    return seen


def test_right_and_wrong_passwords(user, settings):
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = 10
    assert passwords.password_verify(user, "right-password") is True
    assert passwords.password_verify(user, "wrong-password") is False
    assert passwords.password_verify(user, "") is False


def test_the_hash_runs_on_another_thread_with_raised_niceness(user, settings, observed):
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = 7
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert passwords.password_verify(user, "right-password")
    ((thread, niceness, _),) = observed
    assert thread != threading.get_native_id()
    assert niceness == min(19, mine + 7)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the request thread is untouched


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is a Linux scheduling policy")
@pytest.mark.parametrize("idle", [True, False])
def test_the_hashing_thread_runs_under_the_idle_policy_when_enabled(user, settings, observed, idle):
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = 10
    settings.DOSSIER_PASSWORD_CHECK_IDLE_POLICY = idle
    assert passwords.password_verify(user, "right-password")
    ((_, _, policy),) = observed
    assert policy == (os.SCHED_IDLE if idle else os.sched_getscheduler(0))
    assert os.sched_getscheduler(threading.get_native_id()) != os.SCHED_IDLE  # never the request thread


def test_niceness_zero_checks_in_the_calling_thread(user, settings, observed):
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = 0
    assert passwords.password_verify(user, "right-password")
    ((thread, _, _),) = observed
    assert thread == threading.get_native_id()


def test_an_outdated_hash_is_upgraded_and_saved(user, settings):
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = 10
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    user.password = hashers.make_password("right-password", hasher="md5")
    user.save()
    assert passwords.password_verify(user, "right-password")
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")
    assert user.check_password("right-password")


def test_a_forked_process_builds_its_own_pool(user, settings, monkeypatch):
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = 10
    passwords.password_verify(user, "right-password")
    parent_pool = passwords._executor(10)
    monkeypatch.setattr(passwords.os, "getpid", lambda: -1)  # as if in a child after fork
    assert passwords._executor(10) is not parent_pool
    assert passwords.password_verify(user, "right-password")


PRODUCTION_HASHERS = [
    "config.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]


def test_production_settings_hash_with_argon2id_at_owasp_parameters():
    import argon2

    from config import settings as production

    assert production.PASSWORD_HASHERS == PRODUCTION_HASHERS
    assert production.AUTHENTICATION_BACKENDS == ["config.passwords.PasswordCheckBackend"]
    hasher = hashers.import_string(production.PASSWORD_HASHERS[0])()
    encoded = hasher.encode("right-password", hasher.salt())
    params = argon2.extract_parameters(encoded.removeprefix("argon2"))
    assert encoded.startswith("argon2$argon2id$")
    assert params.type is argon2.Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)
    assert hasher.verify("right-password", encoded) and not hasher.verify("wrong-password", encoded)


@pytest.mark.parametrize("niceness", [0, 10])
def test_a_pbkdf2_user_signing_in_gets_an_argon2id_hash(client, settings, niceness):
    settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = niceness
    account = get_user_model().objects.create(
        username="legacy", password=hashers.make_password("right-password", hasher="pbkdf2_sha256")
    )
    refused = client.post("/accounts/login/", {"username": "legacy", "password": "wrong-password"})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    account.refresh_from_db()
    assert account.password.startswith("pbkdf2_sha256$")  # a wrong password upgrades nothing
    response = client.post("/accounts/login/", {"username": "legacy", "password": "right-password"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(account.pk)
    account.refresh_from_db()
    assert account.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert hashers.check_password("right-password", account.password)
    assert client.get("/").status_code == 200  # the session survives the upgrade (not a password change)


def test_a_signature_check_upgrades_a_pbkdf2_hash_too(user, settings):
    settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
    user.password = hashers.make_password("right-password", hasher="pbkdf2_sha256")
    user.save()
    assert passwords.password_verify(user, "right-password")
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")


@pytest.fixture
def every_slot_taken(settings):
    """One slot per process, held by another request for the duration of the test."""
    settings.DOSSIER_PASSWORD_CHECK_SLOTS = 1
    settings.DOSSIER_PASSWORD_CHECK_WAIT_SECONDS = 0.2
    slots = passwords._slots()
    assert slots.acquire(timeout=5)
    yield
    slots.release()


def test_no_free_slot_answers_503_busy_and_counts_no_failure(user, api_client, every_slot_taken):
    from governance.models import LoginFailureCounter

    body = {"username": "signer", "password": "right-password"}
    response = api_client.post("/api/auth/token", body, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "busy"
    assert response["Retry-After"] == "1"
    assert not LoginFailureCounter.objects.filter(attempts__gt=0).exists()


def test_the_sign_in_page_answers_503_when_every_slot_stays_busy(user, client, every_slot_taken):
    response = client.post("/accounts/login/", {"username": "signer", "password": "right-password"})
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert b"try again in a moment" in response.content


def test_checks_beyond_the_slots_wait_for_one(user, settings):
    settings.DOSSIER_PASSWORD_CHECK_SLOTS = 2
    settings.DOSSIER_PASSWORD_CHECK_WAIT_SECONDS = 30
    running, peak, lock = [0], [0], threading.Lock()
    original = hashers.verify_password

    def counted(password, encoded, preferred="default"):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            threading.Event().wait(0.05)
            return original(password, encoded, preferred)
        finally:
            with lock:
                running[0] -= 1

    passwords.verify_password, saved = counted, passwords.verify_password
    try:
        results: list[bool] = []
        threads = [
            threading.Thread(target=lambda: results.append(passwords.password_verify(user, "right-password")))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        passwords.verify_password = saved
    assert results == [True] * 6
    assert peak[0] == 2


@pytest.mark.parametrize("enabled", [True, False])
def test_server_timing_tells_the_password_check_apart_when_enabled(user, api_client, settings, enabled):
    settings.DOSSIER_SERVER_TIMING = enabled
    body = {"username": "signer", "password": "right-password"}
    response = api_client.post("/api/auth/token", body, format="json")
    assert response.status_code == 200
    listing = api_client.get("/api/experiment-console/sessions")  # no password checked
    if enabled:
        figures = server_timing(response["Server-Timing"])
        assert set(figures) == {"password", "app"} and 0 < figures["password"] <= figures["app"]
        assert set(server_timing(listing["Server-Timing"])) == {"app"}
    else:
        assert "Server-Timing" not in response and "Server-Timing" not in listing


def server_timing(header: str) -> dict[str, float]:
    return {name: float(duration) for name, duration in (part.strip().split(";dur=") for part in header.split(","))}
