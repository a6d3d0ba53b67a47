"""API tokens: hashed, expiring, revoked by logout, a password change and the loss of the last membership."""

from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from governance.models import AuditEvent, Membership
from governance.services.tokens import TOKENS_REVOKED_AUDIT_ACTION
from tests.factories import PASSWORD, TeamFactory, member_of

pytestmark = pytest.mark.django_db

SESSIONS = "/api/experiment-console/sessions"


def issue(api_client, username="sci", password=PASSWORD):
    response = api_client.post("/api/auth/token", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def works(token: str) -> bool:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    status = client.get(SESSIONS).status_code
    assert status in (200, 401), status
    return status == 200


def test_a_token_expires_after_the_configured_lifetime_and_is_stored_hashed(api_client, scientist, settings):
    settings.DOSSIER_TOKEN_TTL_HOURS = 24
    body = issue(api_client)
    assert set(body) == {"token", "expiry"}
    assert body["expiry"].endswith("Z")
    expiry = datetime.fromisoformat(body["expiry"].replace("Z", "+00:00"))
    assert abs(expiry - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)
    row = AuthToken.objects.get(user=scientist)
    assert body["token"] not in (row.digest, row.token_key) and row.token_key == body["token"][: len(row.token_key)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {AuthToken._meta.db_table}")  # noqa: S608
        assert body["token"] not in repr(cursor.fetchall())
    assert works(body["token"])

    settings.DOSSIER_TOKEN_TTL_HOURS = 1
    short = issue(api_client)
    assert datetime.fromisoformat(short["expiry"].replace("Z", "+00:00")) < timezone.now() + timedelta(
        hours=1, minutes=1
    )


def test_a_token_stops_working_after_its_ttl(api_client, scientist):
    body = issue(api_client)
    assert works(body["token"])
    AuthToken.objects.filter(user=scientist).update(expiry=timezone.now() - timedelta(seconds=1))
    assert not works(body["token"])
    assert not AuthToken.objects.filter(user=scientist).exists()  # expired tokens are removed when presented


def test_logout_revokes_only_the_calling_token(api_client, scientist):
    first, second = issue(api_client)["token"], issue(api_client)["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert api_client.post("/api/auth/logout").status_code == 204
    assert not works(first)
    assert works(second)
    again = api_client.post("/api/auth/logout")
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "authentication_failed"


def test_logout_needs_a_token(api_client, scientist):
    assert api_client.post("/api/auth/logout").status_code == 401
    api_client.force_login(scientist)
    response = api_client.post("/api/auth/logout")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_token_authenticated"


def test_a_header_that_is_not_a_token_is_401(client):
    assert client.get(SESSIONS, HTTP_AUTHORIZATION="Token ÿÿÿ").status_code == 401
    assert client.get(SESSIONS, HTTP_AUTHORIZATION="Token a b").status_code == 401
    assert client.get(SESSIONS, HTTP_AUTHORIZATION="Token " + "0" * 64).status_code == 401


def test_a_password_change_revokes_every_token(api_client, scientist):
    tokens = [issue(api_client)["token"] for _ in range(2)]
    scientist.set_password("a-new-Passw0rd!")
    scientist.save()
    assert not any(works(token) for token in tokens)
    event = AuditEvent.objects.get(action=TOKENS_REVOKED_AUDIT_ACTION)
    assert event.payload == {"cause": "password_changed", "tokens": 2}


def test_other_saves_and_hash_upgrades_keep_tokens(api_client, scientist, settings):
    token = issue(api_client)["token"]
    scientist.first_name = "Sci"
    scientist.save()
    assert works(token)
    # an outdated hash is upgraded by a sign-in: not a password change
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    get_user_model().objects.filter(pk=scientist.pk).update(password=make_password(PASSWORD, hasher="pbkdf2_sha256"))
    second = issue(api_client)["token"]
    assert get_user_model().objects.get(pk=scientist.pk).password.startswith("md5$")
    assert works(token) and works(second)


def test_changepassword_command_revokes_tokens(api_client, scientist, monkeypatch):
    from io import StringIO

    token = issue(api_client)["token"]
    monkeypatch.setattr(
        "django.contrib.auth.management.commands.changepassword.getpass.getpass", lambda prompt="": "N3w-secret-pass!"
    )
    call_command("changepassword", "sci", stdout=StringIO())
    assert not works(token)


def test_admin_password_form_revokes_tokens(api_client, scientist, django_user_model):
    token = issue(api_client)["token"]
    root = django_user_model.objects.create_superuser("root", "root@example.org", PASSWORD)
    admin = Client()
    admin.force_login(root)
    response = admin.post(
        f"/admin/auth/user/{scientist.pk}/password/",
        {"password1": "An0ther-secret!", "password2": "An0ther-secret!", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not works(token)


def test_losing_the_last_membership_revokes_tokens(api_client, team):
    user = member_of(team, "scientist", username="sci")
    other = TeamFactory(slug="gamma")
    member_of(other, "reviewer", username="sci")
    token = issue(api_client)["token"]
    Membership.objects.filter(user=user, team=team).delete()
    assert works(token)  # still a member of gamma
    Membership.objects.get(user=user, team=other).delete()
    assert not works(token)
    event = AuditEvent.objects.get(action=TOKENS_REVOKED_AUDIT_ACTION)
    assert event.payload == {"cause": "last_membership_removed", "tokens": 1}


def test_deleting_a_team_revokes_the_tokens_of_its_only_members(api_client, team):
    member_of(team, "scientist", username="sci")
    token = issue(api_client)["token"]
    team.delete()
    assert not works(token)


@pytest.mark.django_db(transaction=True)
def test_the_migration_drops_the_old_plain_tokens():
    from django.db.migrations.executor import MigrationExecutor

    previous, current = (
        ("governance", "0006_protect_snapshots_and_stage_rows"),
        (
            "governance",
            "0007_login_failure_counters_and_hashed_tokens",
        ),
    )
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([previous])
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer, created text)")
            cursor.execute("INSERT INTO authtoken_token VALUES ('0123456789abcdef0123456789abcdef01234567', 1, 'x')")
        executor = MigrationExecutor(connection)
        executor.migrate([current])
        assert "authtoken_token" not in connection.introspection.table_names()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
