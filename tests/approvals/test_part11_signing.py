"""Part 11 signing controls through the API (docs/part11.md): certification before the first signature, both
signature components for the first signature of a session, password aging and reuse, and the lockout notice."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.models import ApprovalSignature, ApprovalStage, SignatureAttempt, SignatureCertification, SigningSession
from approvals.services.signing_controls import CURRENT_STATEMENT
from exports.events import EventType
from exports.services.executions import execution_create
from governance.models import AuditEvent, PasswordHistoryEntry, PasswordState
from tests.approvals.factories import PASSWORD, export_with_ladder
from tests.factories import member_of

CERTIFY = "/api/auth/signature-certification"


def approve_url(export) -> str:
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/approve"


def approve_body(export, **extra) -> dict:
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    return {"decision": "approve", "password": PASSWORD, "expected_stage_id": stage.pk, **extra}


def token_client(username: str, password: str = PASSWORD) -> APIClient:
    """A client holding its own API token: one signing session."""
    client = APIClient()
    response = client.post("/api/auth/token", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.json()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


@pytest.fixture
def exports(team, crew, snapshot):
    """Three exports whose first stage the reviewer may sign."""
    made = []
    for n in range(3):
        execution = execution_create(team=team, title=f"Stability lot {n}", owner=crew.author)
        made.append(export_with_ladder(execution=execution, author=crew.author, snapshot=snapshot))
    return made


@pytest.mark.django_db
def test_a_first_time_signer_must_certify_with_their_password_before_signing(team, crew, exports):
    newcomer = member_of(team, "reviewer", username="newcomer", certified=False)
    client = token_client("newcomer")
    refused = client.post(approve_url(exports[0]), approve_body(exports[0], username="newcomer"), format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "signer_not_certified"
    assert not SignatureAttempt.objects.filter(user=newcomer).exists()  # refused before anything is counted

    status = client.get(CERTIFY).json()
    assert status["certified"] is False and status["current_statement"]["version"] == CURRENT_STATEMENT.version

    unknown = client.post(CERTIFY, {"password": PASSWORD, "statement_version": "1999-9"}, format="json")
    assert unknown.status_code == 400 and "statement_version" in unknown.json()["error"]["details"]["fields"]
    wrong = client.post(CERTIFY, {"password": "nope", "statement_version": CURRENT_STATEMENT.version}, format="json")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "signature_invalid"
    assert wrong.json()["error"]["details"]["remaining_attempts"] == 4  # the signing lockout counts it
    extra = client.post(CERTIFY, {"password": PASSWORD, "statement_version": "2026-1", "x": 1}, format="json")
    assert extra.status_code == 400 and extra.json()["error"]["code"] == "unknown_fields"

    created = client.post(
        CERTIFY, {"password": PASSWORD, "statement_version": CURRENT_STATEMENT.version}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["certified"] is True and created.json()["statement_digest"] == CURRENT_STATEMENT.digest
    row = SignatureCertification.objects.get(user=newcomer)
    assert row.client_address == "127.0.0.1"
    event = AuditEvent.objects.get(action=EventType.SIGNER_CERTIFIED)
    assert event.actor_id == newcomer.pk and event.payload["statement_digest"] == CURRENT_STATEMENT.digest

    signed = client.post(approve_url(exports[0]), approve_body(exports[0], username="newcomer"), format="json")
    assert signed.status_code == 200, signed.json()


@pytest.mark.django_db
def test_the_first_signature_of_a_session_needs_both_components_later_ones_the_password(crew, exports, settings):
    settings.DOSSIER_SIGNING_SESSION_MINUTES = 30
    client = token_client("rev")
    first = client.post(approve_url(exports[0]), approve_body(exports[0]), format="json")
    assert first.status_code == 400 and first.json()["error"]["code"] == "signature_components_required"
    assert not SignatureAttempt.objects.exists()

    wrong_name = client.post(approve_url(exports[0]), approve_body(exports[0], username="qa"), format="json")
    assert wrong_name.status_code == 403 and wrong_name.json()["error"]["code"] == "signature_invalid"
    assert SignatureAttempt.objects.get(user=crew.reviewer).succeeded is False  # counted as a failed attempt

    both = client.post(approve_url(exports[0]), approve_body(exports[0], username="rev"), format="json")
    assert both.status_code == 200, both.json()
    password_only = client.post(approve_url(exports[1]), approve_body(exports[1]), format="json")
    assert password_only.status_code == 200, password_only.json()

    other_session = token_client("rev")  # a new token is a new session
    refused = other_session.post(approve_url(exports[2]), approve_body(exports[2]), format="json")
    assert refused.json()["error"]["code"] == "signature_components_required"

    # 31 minutes without a signature end the continuous session.
    SigningSession.objects.filter(user=crew.reviewer).update(last_signed_at=timezone.now() - timedelta(minutes=31))
    again = client.post(approve_url(exports[2]), approve_body(exports[2]), format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "signature_components_required"
    both_again = client.post(approve_url(exports[2]), approve_body(exports[2], username="rev"), format="json")
    assert both_again.status_code == 200, both_again.json()
    assert ApprovalSignature.objects.filter(signer=crew.reviewer).count() == 3


@pytest.mark.django_db
def test_an_expired_password_blocks_signing_until_it_is_changed(crew, exports, settings):
    settings.DOSSIER_PASSWORD_MAX_AGE_DAYS = 90
    PasswordState.objects.filter(user=crew.reviewer).update(password_changed_at=timezone.now() - timedelta(days=91))
    client = token_client("rev")
    refused = client.post(approve_url(exports[0]), approve_body(exports[0], username="rev"), format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "password_expired"
    assert client.get(CERTIFY).json()["error"]["code"] == "password_expired"

    page = APIClient()
    page.force_login(crew.reviewer)
    redirected = page.get(f"/exports/{exports[0].pk}/")
    assert redirected.status_code == 302 and redirected["Location"] == "/accounts/password/"
    assert page.get("/accounts/password/").status_code == 200

    changed = client.post(
        "/api/auth/password", {"old_password": PASSWORD, "new_password": "a fresh passphrase 42"}, format="json"
    )
    assert changed.status_code == 204, changed.content
    assert client.post(approve_url(exports[0]), approve_body(exports[0]), format="json").status_code == 401  # revoked
    fresh = token_client("rev", "a fresh passphrase 42")
    body = approve_body(exports[0], username="rev", password="a fresh passphrase 42")
    assert fresh.post(approve_url(exports[0]), body, format="json").status_code == 200
    assert AuditEvent.objects.filter(action="governance.password_changed", actor_id=crew.reviewer.pk).exists()


@pytest.mark.django_db
def test_a_recently_used_password_is_refused(crew, settings):
    settings.DOSSIER_PASSWORD_HISTORY = 2
    client = token_client("qa")
    change = {"old_password": PASSWORD, "new_password": "second passphrase 42"}
    assert client.post("/api/auth/password", change, format="json").status_code == 204
    client = token_client("qa", "second passphrase 42")
    back = client.post(
        "/api/auth/password", {"old_password": "second passphrase 42", "new_password": PASSWORD}, format="json"
    )
    assert back.status_code == 400 and back.json()["error"]["code"] == "password_refused"
    assert "last 2" in back.json()["error"]["details"]["new_password"][0]
    wrong = client.post("/api/auth/password", {"old_password": "nope", "new_password": "x y z 123 w"}, format="json")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_password"
    assert PasswordHistoryEntry.objects.filter(user=crew.qa).count() == 2


@pytest.mark.django_db
def test_a_signing_lockout_emails_the_teams_compliance_members_at_once(
    team, crew, exports, django_capture_on_commit_callbacks
):
    member_of(team, "compliance", username="comp2")
    client = token_client("rev")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            body = approve_body(exports[0], username="rev", password="wrong")
            assert client.post(approve_url(exports[0]), body, format="json").status_code == 403
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["comp2@example.org", "comp@example.org"]
    assert "Signing lockout: rev" in message.subject and "5 failed signature attempts" in message.body
    assert f"export {exports[0].pk}" in message.body
