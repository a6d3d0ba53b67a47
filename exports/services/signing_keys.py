"""The bundle signing keyring: Ed25519 keys whose private halves are stored encrypted and never leave the server.

Encryption at rest: AES-256-GCM under a 32-byte key derived with HKDF-SHA256 from
``settings.DOSSIER_SIGNING_KEY_SECRET``; the key id is bound as associated data, so a ciphertext copied onto
another key's row does not decrypt.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict
from exports.bundle import Signer, generate_signer, private_key_from_bytes, private_key_to_bytes, public_key_pem
from exports.choices import SigningKeyStatus
from exports.models import SigningKey
from governance.services.audit import audit_record

ENCRYPTION = "aes-256-gcm+hkdf-sha256:v1"


def _wrapping_key() -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dossier-signing-keys", info=b"private-key-wrap:v1")
    return hkdf.derive(settings.DOSSIER_SIGNING_KEY_SECRET.encode())


def _encrypt(seed: bytes, key_id: str) -> tuple[bytes, bytes]:
    nonce = os.urandom(12)
    return AESGCM(_wrapping_key()).encrypt(nonce, seed, key_id.encode()), nonce


def signer_for(key: SigningKey) -> Signer:
    """Decrypt a key (active or retired) into a bundle signer."""
    if key.encryption != ENCRYPTION:
        raise Conflict(
            f"Signing key {key.key_id} uses unknown encryption {key.encryption}.", code="signing_key_unusable"
        )
    try:
        seed = AESGCM(_wrapping_key()).decrypt(
            bytes(key.private_key_nonce), bytes(key.private_key_ciphertext), key.key_id.encode()
        )
    except InvalidTag:
        raise Conflict(
            f"Signing key {key.key_id} cannot be decrypted with the configured secret.", code="signing_key_unusable"
        ) from None
    signer = Signer.from_private_key(private_key_from_bytes(seed))
    if signer.key_id != key.key_id:
        raise Conflict(f"Signing key {key.key_id} does not match its stored id.", code="signing_key_unusable")
    return signer


def _key_create() -> SigningKey:
    signer = generate_signer()
    ciphertext, nonce = _encrypt(private_key_to_bytes(signer.private_key), signer.key_id)
    return SigningKey.objects.create(
        key_id=signer.key_id,
        algorithm="ed25519",
        public_key_pem=public_key_pem(signer.public_key),
        private_key_ciphertext=ciphertext,
        private_key_nonce=nonce,
        encryption=ENCRYPTION,
        status=SigningKeyStatus.ACTIVE,
    )


def signing_key_active() -> SigningKey:
    """The key new bundles are signed with; the first one is created on first use."""
    key = SigningKey.objects.filter(status=SigningKeyStatus.ACTIVE).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            key = _key_create()
            audit_record(action="signing_key.created", obj=key, payload={"key_id": key.key_id})
            return key
    except IntegrityError:  # another process created it first
        return SigningKey.objects.get(status=SigningKeyStatus.ACTIVE)


@transaction.atomic
def signing_key_rotate(*, actor=None) -> SigningKey:
    """Retire the active key (its public key stays published) and make a new one active."""
    retired = list(SigningKey.objects.select_for_update().filter(status=SigningKeyStatus.ACTIVE))
    now = timezone.now()
    for key in retired:
        key.status, key.retired_at = SigningKeyStatus.RETIRED, now
        key.save(update_fields=["status", "retired_at"])
    key = _key_create()
    audit_record(
        action="signing_key.rotated",
        actor=actor,
        obj=key,
        payload={"key_id": key.key_id, "retired": [old.key_id for old in retired]},
    )
    return key
