"""Part 11 controls around every electronic signature (docs/part11.md): the signer's certification (21 CFR
11.100(c)) and the signature's components within a signing session (21 CFR 11.200(a)(1)).

Every signature (a ladder stage, an audit-trail review) goes through ``signature_authenticate`` before anything is
recorded, and ``signing_session_touch`` once it is:

1. the signer must have certified, with their password, that their electronic signature is the legally binding
   equivalent of their handwritten one (403 ``signer_not_certified``);
2. the first signature of a session (an API token or a browser session) gives both components, the username and
   the password (400 ``signature_components_required`` otherwise); later signatures of the same continuous session
   need the password only, until ``DOSSIER_SIGNING_SESSION_MINUTES`` pass without a signature;
3. the components are checked by the signing lockout (``approvals.services.signing``): a wrong username counts
   as a failed attempt like a wrong password.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from approvals.models import SignatureCertification, SigningSession
from approvals.services.signing import signer_verify
from config.errors import PermissionDenied, ValidationFailed
from exports.events import EventType
from exports.models import NarrativeExport
from governance.services.audit import audit_record


@dataclass(frozen=True)
class CertificationStatement:
    version: str
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


# Statements are never edited once published: a new wording is a new version (certifications keep the digest).
STATEMENTS = {
    statement.version: statement
    for statement in (
        CertificationStatement(
            "2026-1",
            "I certify that the electronic signatures I execute in Dossier are the legally binding equivalent of my "
            "traditional handwritten signature (21 CFR 11.100(c)). I will not share my password with anyone and I "
            "am accountable for every record signed with my signature.",
        ),
    )
}
CURRENT_STATEMENT = STATEMENTS["2026-1"]


class SignerNotCertified(PermissionDenied):
    code = "signer_not_certified"
    default_message = (
        "Certify that your electronic signature is the legally binding equivalent of your handwritten one before "
        "you sign (POST /api/auth/signature-certification, or the page /account/signature-certification)."
    )


def signer_certification(*, user) -> SignatureCertification | None:
    """The user's latest certification, or None."""
    return SignatureCertification.objects.filter(user_id=user.pk).first()


def signer_certify(*, user, password: str, statement_version: str, client_address: str = "") -> SignatureCertification:
    """Record ``user``'s certification of the statement ``statement_version``, given with their password (a wrong
    one is a failed signing attempt: counted towards the signing lockout)."""
    statement = STATEMENTS.get(statement_version)
    if statement is None:
        raise ValidationFailed(
            f"Unknown statement version '{statement_version}'; the current one is '{CURRENT_STATEMENT.version}'.",
            code="unknown_statement_version",
            details={"statement_version": ["Unknown version."], "current_version": CURRENT_STATEMENT.version},
        )
    signer_verify(user=user, password=password)
    with transaction.atomic():
        certification = SignatureCertification.objects.create(
            user=user,
            statement_version=statement.version,
            statement_digest=statement.digest,
            certified_at=timezone.now(),
            client_address=client_address[:45],
        )
        audit_record(
            action=EventType.SIGNER_CERTIFIED,
            actor=user,
            obj=certification,
            payload={"statement_version": statement.version, "statement_digest": statement.digest},
        )
    return certification


def signer_certification_require(*, user) -> None:
    if not SignatureCertification.objects.filter(user_id=user.pk).exists():
        raise SignerNotCertified()


def signing_session_key(request) -> str | None:
    """A digest naming the request's session: its API token, or its browser session (None without either)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, AuthToken):
        identity = f"token:{auth.digest}"
    else:
        session = getattr(request, "session", None)
        key = session.session_key if session is not None else None
        if not key:
            return None
        identity = f"session:{key}"
    return hashlib.sha256(identity.encode()).hexdigest()


def signing_session_window() -> timedelta:
    return timedelta(minutes=settings.DOSSIER_SIGNING_SESSION_MINUTES)


def signing_session_continues(*, user, session_key: str | None, now: datetime | None = None) -> bool:
    """Whether ``user`` signed in this session within the window: then the password alone signs."""
    if session_key is None:
        return False
    since = (now or timezone.now()) - signing_session_window()
    return SigningSession.objects.filter(key=session_key, user_id=user.pk, last_signed_at__gte=since).exists()


def signing_session_touch(*, user, session_key: str | None, now: datetime | None = None) -> None:
    """Record a signature in this session: the continuous period of signing restarts now."""
    if session_key is None:
        return
    now = now or timezone.now()
    SigningSession.objects.bulk_create(  # one upsert: INSERT … ON CONFLICT (key) DO UPDATE
        [SigningSession(key=session_key, user_id=user.pk, last_signed_at=now)],
        update_conflicts=True,
        unique_fields=["key"],
        update_fields=["user", "last_signed_at"],
    )
    # The signer's sessions that have ended can never sign with the password alone again: they are not kept.
    SigningSession.objects.filter(user_id=user.pk, last_signed_at__lt=now - signing_session_window()).delete()


def signing_components_require(*, user, username: str | None, session_key: str | None) -> None:
    """Refuse a first signature of a session given without the username (before anything counts)."""
    if username or signing_session_continues(user=user, session_key=session_key):
        return
    raise ValidationFailed(
        "The first signature of a session, and the first after "
        f"{settings.DOSSIER_SIGNING_SESSION_MINUTES} minutes without one, needs your username as well as your "
        "password.",
        code="signature_components_required",
        details={"username": ["Required for this signature."]},
    )


def signature_authenticate(
    *,
    user,
    password: str,
    username: str | None,
    session_key: str | None,
    export: NarrativeExport | None = None,
    team_id: int | None = None,
) -> None:
    """Every check an electronic signature passes before it is recorded, in order: certification (403),
    components (400), then the components themselves through the signing lockout (403, counted)."""
    signer_certification_require(user=user)
    signing_components_require(user=user, username=username, session_key=session_key)
    signer_verify(user=user, password=password, export=export, username=username or None, team_id=team_id)
