"""Ed25519 signing keys, key ids and DSSE envelopes.

Key id: the first 16 hex characters of sha256 over the raw 32-byte public key. It is derived, so anyone holding
the public key can recompute it, and it is stable across PEM/DER re-encodings.

Private keys leave this module only as bytes (raw 32-byte seed, or PKCS#8 PEM optionally password-protected);
how they are stored and encrypted at rest is the caller's business.
"""

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import BundleError

KEY_ALGORITHM = "ed25519"
SIGNATURE_SIZE = 64

PublicKeyMaterial = bytes | str | Ed25519PublicKey


@dataclass(frozen=True)
class Signer:
    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> "Signer":
        return cls(key_id=key_id_for(private_key.public_key()), private_key=private_key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def generate_signer() -> Signer:
    return Signer.from_private_key(Ed25519PrivateKey.generate())


def key_id_for(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM, the form `openssl pkeyutl -pubin -inkey` reads."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def load_public_key(material: PublicKeyMaterial) -> Ed25519PublicKey:
    """Accept a key object, a PEM (str or bytes) or the raw 32 public bytes."""
    if isinstance(material, Ed25519PublicKey):
        return material
    data = material.encode("ascii") if isinstance(material, str) else bytes(material)
    try:
        if len(data) == 32:
            return Ed25519PublicKey.from_public_bytes(data)
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise BundleError("invalid_public_key", f"not an Ed25519 public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("invalid_public_key", f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def private_key_to_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte seed: the smallest thing to encrypt under the application keyring."""
    return private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def private_key_from_bytes(raw: bytes) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError as exc:
        raise BundleError("invalid_private_key", "an Ed25519 private key is 32 raw bytes") from exc


def private_key_to_pem(private_key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def private_key_from_pem(pem: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise BundleError("invalid_private_key", f"cannot load the private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError("invalid_private_key", f"expected an Ed25519 private key, got {type(key).__name__}")
    return key


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: what is actually signed, binding the type to the payload."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def dsse_sign(payload_type: str, payload: bytes, signer: Signer) -> dict[str, Any]:
    signature = signer.sign(dsse_pae(payload_type, payload))
    return {
        "payload": b64encode(payload),
        "payloadType": payload_type,
        "signatures": [{"keyid": signer.key_id, "sig": b64encode(signature)}],
    }


def dsse_verify(
    envelope: Mapping[str, Any], public_keys: Mapping[str, Ed25519PublicKey]
) -> tuple[bytes, tuple[str, ...]]:
    """Check every signature of a DSSE envelope; return (payload, key ids that signed it) or raise BundleError.

    Every signature must come from a known key and verify: an auditor should not have to wonder which of
    several signatures was meant.
    """
    payload_type, payload, signatures = _dsse_fields(envelope)
    pae = dsse_pae(payload_type, payload)
    signed_by = []
    for entry in signatures:
        keyid, signature = entry["keyid"], entry["sig"]
        key = public_keys.get(keyid)
        if key is None:
            raise BundleError("unknown_signing_key", f"DSSE signature by unknown key id {keyid!r}")
        if not verify_signature(key, signature, pae):
            raise BundleError("attestation_signature_invalid", f"DSSE signature by key {keyid} does not verify")
        signed_by.append(keyid)
    return payload, tuple(signed_by)


def _dsse_fields(envelope: Mapping[str, Any]) -> tuple[str, bytes, list[dict[str, Any]]]:
    if not isinstance(envelope, Mapping) or set(envelope) != {"payload", "payloadType", "signatures"}:
        raise BundleError("attestation_invalid", "a DSSE envelope has exactly payload, payloadType, signatures")
    payload_type, signatures = envelope["payloadType"], envelope["signatures"]
    if not isinstance(payload_type, str) or not isinstance(signatures, list) or not signatures:
        raise BundleError("attestation_invalid", "payloadType must be a string and signatures a non-empty list")
    decoded = []
    for entry in signatures:
        if not isinstance(entry, Mapping) or set(entry) != {"keyid", "sig"} or not isinstance(entry["keyid"], str):
            raise BundleError("attestation_invalid", "each DSSE signature has exactly a string keyid and a sig")
        decoded.append({"keyid": entry["keyid"], "sig": b64decode(entry["sig"])})
    return payload_type, b64decode(envelope["payload"]), decoded


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object) -> bytes:
    """Strict standard base64: only the canonical encoding is accepted, so that no two envelope texts
    (differing in padding bits, say) carry the same signed bytes."""
    if not isinstance(text, str):
        raise BundleError("attestation_invalid", "base64 field must be a string")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError("attestation_invalid", f"invalid base64: {exc}") from exc
    if b64encode(data) != text:
        raise BundleError("attestation_invalid", "base64 is not in canonical form")
    return data
