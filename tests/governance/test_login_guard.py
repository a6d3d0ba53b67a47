"""The guessing limit shared by the login form, the admin login and POST /api/auth/token."""

import re

import pytest
from django.test import Client, RequestFactory

from config.client_address import client_address
from governance.models import LoginFailureCounter
from governance.services.login_guard import login_counters_purge, login_window
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token"
LOGIN_URL = "/accounts/login/"
ATTACKER = "198.51.100.66"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.DOSSIER_TRUSTED_PROXIES = []
    settings.DOSSIER_LOGIN_WINDOW_MINUTES = 15
    settings.DOSSIER_LOGIN_MAX_FAILURES_PER_USER_ADDRESS = 5
    settings.DOSSIER_LOGIN_MAX_FAILURES_PER_ADDRESS = 30
    return settings


def token_attempt(api_client, username="sci", password="wrong", peer=ATTACKER, forwarded=None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return api_client.post(TOKEN_URL, {"username": username, "password": password}, format="json", **extra)


def form_attempt(username="sci", password="wrong", peer=ATTACKER):
    return Client().post(LOGIN_URL, {"username": username, "password": password}, REMOTE_ADDR=peer)


def address_of(peer: str, forwarded: str | None = None) -> str:
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().get("/", **extra))


# --- client address --------------------------------------------------------------------------------------------


def test_forwarded_for_from_an_untrusted_peer_is_ignored():
    assert address_of("203.0.113.5", "10.9.9.9") == "203.0.113.5"


def test_a_trusted_proxy_gives_the_right_most_untrusted_address(settings):
    settings.DOSSIER_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.1"]
    # the client forged "1.2.3.4"; the first proxy appended the real peer 203.0.113.9; the second appended the first
    assert address_of("192.0.2.1", "1.2.3.4, 203.0.113.9, 10.1.2.3") == "203.0.113.9"
    assert address_of("10.0.0.7", "203.0.113.9") == "203.0.113.9"
    assert address_of("10.0.0.7") == "10.0.0.7"  # no header: the proxy itself
    assert address_of("10.0.0.7", "not-an-ip, 10.2.2.2") == "10.2.2.2"  # stops at the last trusted hop
    assert address_of("10.0.0.7", "[2001:db8::5]:443") == "2001:db8::5"
    assert address_of("203.0.113.5", "9.9.9.9") == "203.0.113.5"  # a peer outside the list is never a proxy


def test_ipv4_mapped_peers_are_plain_ipv4():
    assert address_of("::ffff:203.0.113.5") == "203.0.113.5"


# --- the token endpoint ----------------------------------------------------------------------------------------


def test_forty_guesses_with_forty_forged_forwarded_for_values_are_refused_after_the_limit(api_client, scientist):
    statuses = [token_attempt(api_client, forwarded=f"10.0.{n}.1").status_code for n in range(40)]
    assert statuses == [401] * 5 + [429] * 35
    refused = token_attempt(api_client, forwarded="10.99.0.1")
    body = refused.json()["error"]
    assert body["code"] == "too_many_attempts"
    seconds = body["details"]["retry_after_seconds"]
    assert 1 <= seconds <= 15 * 60
    assert refused["Retry-After"] == str(seconds)
    # locked out even with the right password: the password is not checked any more
    assert token_attempt(api_client, password=PASSWORD).status_code == 429
    # refused attempts do not count
    assert LoginFailureCounter.objects.get(key__startswith="user-address:").attempts == 5


def test_the_address_limit_holds_across_usernames(api_client, scientist):
    statuses = [token_attempt(api_client, username=f"user{n}").status_code for n in range(40)]
    assert statuses == [401] * 30 + [429] * 10
    assert token_attempt(api_client, password=PASSWORD).status_code == 429
    assert token_attempt(api_client, password=PASSWORD, peer="203.0.113.200").status_code == 200


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(api_client, scientist, settings):
    settings.DOSSIER_TRUSTED_PROXIES = [ATTACKER]
    statuses = [token_attempt(api_client, forwarded=f"203.0.113.{n}").status_code for n in range(40)]
    assert statuses == [401] * 40
    same_client = [token_attempt(api_client, forwarded="192.0.2.44").status_code for _ in range(6)]
    assert same_client == [401] * 5 + [429]
    assert token_attempt(api_client, password=PASSWORD, forwarded="192.0.2.45").status_code == 200


def test_a_right_password_gives_its_reservation_back(api_client, scientist):
    for _ in range(4):
        assert token_attempt(api_client).status_code == 401
    for _ in range(3):
        assert token_attempt(api_client, password=PASSWORD).status_code == 200
    assert token_attempt(api_client).status_code == 401
    assert token_attempt(api_client).status_code == 429


def test_the_limit_ends_with_its_window(api_client, scientist, monkeypatch):
    for _ in range(5):
        token_attempt(api_client)
    assert token_attempt(api_client, password=PASSWORD).status_code == 429
    start, _ = login_window()
    monkeypatch.setattr("governance.services.login_guard.time.time", lambda: start + 15 * 60 + 1)
    assert token_attempt(api_client, password=PASSWORD).status_code == 200
    assert login_counters_purge() == 2  # the ended window's two counters
    assert LoginFailureCounter.objects.count() == 2  # the new window's


# --- the login form shares the limit ---------------------------------------------------------------------------


def test_the_login_form_and_the_token_endpoint_share_one_limit(api_client, scientist):
    for _ in range(3):
        assert form_attempt().status_code == 200
    for _ in range(2):
        assert token_attempt(api_client).status_code == 401
    response = form_attempt(password=PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    html = response.content.decode()
    assert "Too many failed sign-in attempts from your address" in html
    # The window's end, in words: minutes, or seconds when the window is about to close.
    assert re.search(r"UTC \(in \d+ (minute|second)s?\)", html), html
    assert "_auth_user_id" not in response.wsgi_request.session
    assert token_attempt(api_client, password=PASSWORD).status_code == 429


def test_the_login_form_still_signs_in(scientist):
    client = Client()
    response = client.post(LOGIN_URL, {"username": "sci", "password": PASSWORD}, REMOTE_ADDR=ATTACKER)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(scientist.pk)
    wrong = form_attempt()
    assert wrong.status_code == 200
    assert "Your username and password did not match" in wrong.content.decode()


def test_the_admin_login_shares_the_limit(api_client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.org", PASSWORD)
    for _ in range(5):
        token_attempt(api_client, username="root")
    response = Client().post("/admin/login/", {"username": "root", "password": PASSWORD}, REMOTE_ADDR=ATTACKER)
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_never_pass_more_password_checks_than_the_limit(monkeypatch):
    import threading
    import time

    from rest_framework.test import APIClient

    from governance.services import login_guard
    from tests.approvals.test_concurrency import run_together
    from tests.factories import TeamFactory, member_of

    member_of(TeamFactory(slug="alpha"), "scientist", username="sci")
    checks, guard, real = [], threading.Lock(), login_guard.authenticate

    def slow_authenticate(**credentials):
        with guard:
            checks.append(credentials["username"])
        time.sleep(0.3)
        return real(**credentials)

    monkeypatch.setattr(login_guard, "authenticate", slow_authenticate)
    results = run_together(*[lambda: token_attempt(APIClient()).status_code for _ in range(16)])
    assert sorted(results) == [401] * 5 + [429] * 11, results
    assert len(checks) == 5


def test_times_in_words():
    from datetime import UTC, datetime, timedelta

    from config.humanize import duration_in_words, until_in_words

    assert [duration_in_words(s) for s in (0.2, 1, 59, 60, 61, 720, 3600, 3900)] == [
        "1 second",
        "1 second",
        "59 seconds",
        "1 minute",
        "2 minutes",
        "12 minutes",
        "1 hour",
        "1 hour 5 minutes",
    ]
    now = datetime(2026, 12, 1, 13, 53, tzinfo=UTC)
    assert until_in_words(now + timedelta(minutes=12), now=now) == "14:05 UTC (in 12 minutes)"
    assert until_in_words(now + timedelta(hours=11), now=now) == "2026-12-02 00:53 UTC (in 11 hours)"


def test_the_token_schema_documents_every_answer(client, scientist):
    client.force_login(scientist)
    schema = client.get("/api/schema/?format=json").json()
    assert set(schema["paths"]["/api/auth/token"]["post"]["responses"]) == {"200", "400", "401", "415", "429", "503"}
    assert set(schema["paths"]["/api/auth/logout"]["post"]["responses"]) >= {"204", "401"}
    assert set(schema["components"]["schemas"]["TokenOutput"]["required"]) == {"token", "expiry"}
