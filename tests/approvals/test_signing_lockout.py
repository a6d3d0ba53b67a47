"""The signing lockout: the signer's own attempts only, counted atomically, refusals that say what remains."""

import re
import threading
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import ApprovalSignature, ApprovalStage, SignatureAttempt
from approvals.services.ladders import stage_decide
from approvals.services.signing import LOCKOUT_AUDIT_ACTION, SignatureInvalid, SignerLockedOut, signing_status
from governance.models import AuditEvent
from tests.approvals.factories import PASSWORD

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def sign(export, user, password="wrong"):
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    return stage_decide(
        export_id=export.pk,
        actor=user,
        username=user.username,
        decision="approve",
        password=password,
        meaning="",
        comment="",
        expected_stage_id=stage.pk,
    )


def refusal(export, user, password="wrong"):
    with pytest.raises((SignatureInvalid, SignerLockedOut)) as caught:
        sign(export, user, password)
    return caught.value


@pytest.mark.django_db
def test_each_failure_says_what_remains_and_refusals_while_locked_do_not_move_the_lock(export, crew):
    for attempt in range(1, 5):
        error = refusal(export, crew.reviewer)
        assert error.code == "signature_invalid"
        assert error.details["remaining_attempts"] == 5 - attempt
        assert error.details["locked_until"] is None
        assert f"{5 - attempt} attempt" in error.message
    fifth = refusal(export, crew.reviewer)
    assert fifth.code == "signature_invalid" and fifth.details["remaining_attempts"] == 0
    locked_until = fifth.details["locked_until"]
    assert ISO_Z.match(locked_until)
    assert "Signing is now locked until" in fifth.message and "UTC (in " in fifth.message
    for _ in range(6):
        error = refusal(export, crew.reviewer, password=PASSWORD)  # even the right password is refused
        assert error.code == "signer_locked_out"
        assert error.details["locked_until"] == locked_until
        assert error.details["remaining_attempts"] == 0
        assert "signing is locked until" in error.message and "UTC (in 15 minutes)" in error.message
    assert SignatureAttempt.objects.filter(user=crew.reviewer, refused_locked=True).count() == 6
    assert signing_status(user=crew.reviewer).failures == 5
    assert AuditEvent.objects.filter(action=LOCKOUT_AUDIT_ACTION).count() == 1
    assert not ApprovalSignature.objects.exists()


@pytest.mark.django_db
def test_the_lock_ends_when_the_oldest_failure_leaves_the_window(export, crew):
    for _ in range(5):
        refusal(export, crew.reviewer)
    refusal(export, crew.reviewer, password=PASSWORD)  # refused while locked
    oldest = SignatureAttempt.objects.filter(user=crew.reviewer, refused_locked=False).order_by("created_at").first()
    SignatureAttempt.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(minutes=16))
    assert signing_status(user=crew.reviewer).locked_until is None
    assert sign(export, crew.reviewer, PASSWORD).signature.signer_username == "rev"
    assert SignatureAttempt.objects.filter(user=crew.reviewer, succeeded=True).count() == 1


@pytest.mark.django_db
def test_failed_logins_by_others_never_block_signing(export, crew, api_client, settings):
    settings.DOSSIER_LOGIN_MAX_FAILURES_PER_USER_ADDRESS = 5
    for n in range(40):
        api_client.post(
            "/api/auth/token",
            {"username": "rev", "password": f"guess-{n}"},
            format="json",
            REMOTE_ADDR="198.51.100.66",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{n}",
        )
        Client().post("/accounts/login/", {"username": "rev", "password": f"guess-{n}"}, REMOTE_ADDR="198.51.100.66")
    locked_out = api_client.post(
        "/api/auth/token", {"username": "rev", "password": PASSWORD}, format="json", REMOTE_ADDR="198.51.100.66"
    )
    assert locked_out.status_code == 429  # the attacker's address is limited ...
    assert signing_status(user=crew.reviewer).failures == 0
    assert sign(export, crew.reviewer, PASSWORD).signature.signer_username == "rev"  # ... the signer is not


@pytest.mark.django_db
def test_the_api_refusal_carries_remaining_attempts_and_the_lock_end(export, crew, client_for):
    client = client_for(crew.reviewer)
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    url = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/approve"
    body = {"decision": "approve", "password": "wrong", "expected_stage_id": stage.pk}
    first = client.post(url, body, format="json")
    assert first.status_code == 403
    assert first.json()["error"]["details"]["remaining_attempts"] == 4
    for _ in range(4):
        client.post(url, body, format="json")
    locked = client.post(url, {**body, "password": PASSWORD}, format="json")
    assert locked.status_code == 403
    error = locked.json()["error"]
    assert error["code"] == "signer_locked_out"
    assert error["details"]["remaining_attempts"] == 0 and ISO_Z.match(error["details"]["locked_until"])


@pytest.mark.django_db
def test_the_page_warns_of_remaining_attempts_and_shows_the_lock_end_in_words(export, crew):
    client = Client()
    client.force_login(crew.reviewer)
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    form = {"expected_stage_id": stage.pk, "decision": "approve", "meaning": "", "comment": "", "password": "wrong"}
    form["username"] = crew.reviewer.username
    html = client.post(f"/exports/{export.pk}/sign", form, follow=True).content.decode()
    assert "4 attempts left before signing is locked for 15 minutes" in html
    assert 'data-testid="sign-notice"' in html and "4 attempts left before signing is locked." in html
    for _ in range(4):
        client.post(f"/exports/{export.pk}/sign", form)
    html = client.get(f"/exports/{export.pk}/").content.decode()
    assert 'data-testid="sign-form"' not in html
    notice = re.search(r'data-testid="sign-refusal">([^<]*)<', html).group(1)
    assert re.fullmatch(
        r"Signing is locked until \d\d:\d\d UTC \(in 1[45] minutes\): too many wrong passwords\.", notice
    )
    locked_until = signing_status(user=crew.reviewer).locked_until
    assert locked_until.isoformat()[:16] not in html  # no raw ISO timestamp


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_parallel_wrong_signatures_let_exactly_five_password_checks_through(monkeypatch):
    from approvals.services import signing
    from exports.services.executions import execution_create
    from tests.approvals.factories import crew_for, export_with_ladder, published_snapshot
    from tests.approvals.test_concurrency import run_together
    from tests.factories import TeamFactory

    team = TeamFactory(slug="alpha")
    crew = crew_for(team)
    execution = execution_create(team=team, title="Run", owner=crew.author)
    export = export_with_ladder(execution=execution, author=crew.author, snapshot=published_snapshot())
    checks = []
    guard = threading.Lock()
    real = signing.password_verify

    def slow_check(user, password):
        with guard:
            checks.append(password)
        time.sleep(0.3)  # every admitted check overlaps the others' admission
        return real(user, password)

    monkeypatch.setattr(signing, "password_verify", slow_check)

    def attempt():
        try:
            sign(export, crew.reviewer)
        except (SignatureInvalid, SignerLockedOut) as exc:
            return exc
        return None

    results = run_together(*[attempt for _ in range(16)])
    codes = sorted(getattr(r, "code", repr(r)) for r in results)
    assert codes == ["signature_invalid"] * 5 + ["signer_locked_out"] * 11, codes
    assert len(checks) == 5
    locks = {r.details["locked_until"] for r in results if r.code == "signer_locked_out"}
    assert len(locks) == 1 and ISO_Z.match(locks.pop())
    assert all(r.details["remaining_attempts"] == 0 for r in results if r.code == "signer_locked_out")
    assert SignatureAttempt.objects.filter(user=crew.reviewer, refused_locked=False, succeeded=False).count() == 5
    assert SignatureAttempt.objects.filter(user=crew.reviewer, refused_locked=True).count() == 11
    assert AuditEvent.objects.filter(action=LOCKOUT_AUDIT_ACTION).count() == 1


@pytest.mark.django_db
def test_a_signature_refused_as_busy_counts_nothing(export, crew, client_for, settings):
    from config import passwords

    settings.DOSSIER_PASSWORD_CHECK_SLOTS = 1
    settings.DOSSIER_PASSWORD_CHECK_WAIT_SECONDS = 0.2
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    url = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/approve"
    body = {"decision": "approve", "password": PASSWORD, "expected_stage_id": stage.pk}
    slots = passwords._slots()
    assert slots.acquire(timeout=5)  # another request holds the only slot
    try:
        busy = client_for(crew.reviewer).post(url, body, format="json")
    finally:
        slots.release()
    assert busy.status_code == 503 and busy["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "busy"
    assert not SignatureAttempt.objects.filter(user=crew.reviewer).exists()
    assert not ApprovalSignature.objects.exists()
    assert client_for(crew.reviewer).post(url, body, format="json").status_code == 200
