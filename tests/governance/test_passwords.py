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
