"""Keyrings: the versioned key-encryption keys (KEKs) that wrap each object's data key.

A keyring document is JSON::

    {"active": "k3", "keys": {"k1": "<base64 of 32 bytes>", "k2": "...", "k3": "..."}}

or, for keys held in AWS KMS (the key material never leaves KMS; each value names a KMS key)::

    {"provider": "aws-kms", "active": "k2", "keys": {"k1": "arn:aws:kms:...", "k2": "alias/dossier-k2"},
     "region": "eu-central-1", "endpoint_url": null}

New data keys are wrapped by the active key; every listed key still unwraps. Both providers answer the same
interface (:class:`Keyring`), so the stream format and the commands do not know which one is in use.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionFailed, KeyringInvalid, KeyringUnavailable

KEY_SIZE = 32
LOCAL = "local"
AWS_KMS = "aws-kms"
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Keyring(Protocol):
    provider: str
    active: str

    def key_ids(self) -> list[str]: ...

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes: ...


def _check_ids(active: Any, keys: Mapping) -> None:
    if not isinstance(keys, Mapping) or not keys:
        raise KeyringInvalid("the keyring has no keys")
    for key_id in keys:
        if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            raise KeyringInvalid(f"key id {key_id!r} is not 1-64 letters, digits, '.', '_' or '-'")
    if active not in keys:
        raise KeyringInvalid(f"the active key {active!r} is not in the keyring")


class LocalKeyring:
    """KEKs held in the keyring document; a data key is wrapped with AES-256-GCM (random 12-byte nonce), bound to
    the key id and the object."""

    provider = LOCAL

    def __init__(self, *, active: str, keys: Mapping[str, bytes]) -> None:
        _check_ids(active, keys)
        for key_id, key in keys.items():
            if len(key) != KEY_SIZE:
                raise KeyringInvalid(f"key {key_id} is {len(key)} bytes, not {KEY_SIZE}")
        self.active = active
        self._keys = dict(keys)

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self.active]).encrypt(nonce, data_key, self.active.encode() + b"\0" + context)
        return self.active, nonce + sealed

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise DecryptionFailed(f"the keyring has no key {key_id!r}")
        try:
            return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], key_id.encode() + b"\0" + context)
        except (InvalidTag, ValueError):
            raise DecryptionFailed(f"key {key_id!r} does not unwrap this object's data key") from None

    def document(self) -> dict:
        return {
            "active": self.active,
            "keys": {key_id: base64.b64encode(key).decode() for key_id, key in sorted(self._keys.items())},
        }


class AwsKmsKeyring:
    """KEKs that are AWS KMS keys: a data key is wrapped by ``kms:Encrypt`` with the object as encryption
    context, and unwrapped by ``kms:Decrypt`` naming the expected key."""

    provider = AWS_KMS
    _REFUSED = {"InvalidCiphertextException", "IncorrectKeyException", "NotFoundException", "DisabledException",
                "KMSInvalidStateException", "AccessDeniedException"}  # fmt: skip

    def __init__(self, *, active: str, keys: Mapping[str, str], client=None, region: str | None = None,
                 endpoint_url: str | None = None) -> None:  # fmt: skip
        _check_ids(active, keys)
        for key_id, arn in keys.items():
            if not isinstance(arn, str) or not arn:
                raise KeyringInvalid(f"key {key_id} does not name a KMS key")
        self.active = active
        self._keys = dict(keys)
        self.region, self.endpoint_url = region, endpoint_url
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("kms", region_name=self.region, endpoint_url=self.endpoint_url)
        return self._client

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    @staticmethod
    def _context(context: bytes) -> dict[str, str]:
        return {"dossier:object": base64.b64encode(context).decode()}

    def _call(self, operation: str, **kwargs) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if operation == "decrypt" and code in self._REFUSED:
                raise DecryptionFailed(f"KMS refused to unwrap the data key ({code})") from None
            raise KeyringUnavailable(f"KMS {operation} failed: {code or exc}") from None
        except BotoCoreError as exc:
            raise KeyringUnavailable(f"KMS {operation} failed: {exc}") from None

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        answer = self._call(
            "encrypt", KeyId=self._keys[self.active], Plaintext=data_key, EncryptionContext=self._context(context)
        )
        return self.active, answer["CiphertextBlob"]

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        arn = self._keys.get(key_id)
        if arn is None:
            raise DecryptionFailed(f"the keyring has no key {key_id!r}")
        answer = self._call("decrypt", KeyId=arn, CiphertextBlob=wrapped, EncryptionContext=self._context(context))
        return answer["Plaintext"]

    def document(self) -> dict:
        keys = dict(sorted(self._keys.items()))
        document: dict[str, Any] = {"provider": AWS_KMS, "active": self.active, "keys": keys}
        if self.region:
            document["region"] = self.region
        if self.endpoint_url:
            document["endpoint_url"] = self.endpoint_url
        return document


def keyring_from_document(document: Any, *, kms_client=None) -> LocalKeyring | AwsKmsKeyring:
    if not isinstance(document, Mapping):
        raise KeyringInvalid("the keyring must be a JSON object")
    provider = document.get("provider", LOCAL)
    keys, active = document.get("keys"), document.get("active")
    if not isinstance(keys, Mapping):
        raise KeyringInvalid("the keyring's 'keys' must be an object of key id to key")
    if not isinstance(active, str):
        raise KeyringInvalid("the keyring's 'active' must name one of its keys")
    if provider == LOCAL:
        decoded = {}
        for key_id, value in keys.items():
            try:
                decoded[key_id] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                raise KeyringInvalid(f"key {key_id} is not valid base64") from None
        return LocalKeyring(active=active, keys=decoded)
    if provider == AWS_KMS:
        return AwsKmsKeyring(
            active=active,
            keys=keys,
            client=kms_client,
            region=document.get("region"),
            endpoint_url=document.get("endpoint_url"),
        )
    raise KeyringInvalid(f"unknown keyring provider {provider!r} (use '{LOCAL}' or '{AWS_KMS}')")


def keyring_document_read(spec: str) -> dict:
    """The keyring document named by ``spec``: the JSON itself when it starts with ``{``, else a file path."""
    text = spec.strip()
    if not text.startswith("{"):
        try:
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise KeyringInvalid(f"cannot read the keyring file {spec!r}: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise KeyringInvalid(f"the keyring is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise KeyringInvalid("the keyring must be a JSON object")
    return document


def keyring_load(spec: str, *, kms_client=None) -> LocalKeyring | AwsKmsKeyring:
    return keyring_from_document(keyring_document_read(spec), kms_client=kms_client)


def next_key_id(existing: list[str]) -> str:
    numbers = [int(key_id[1:]) for key_id in existing if re.fullmatch(r"k\d+", key_id)]
    return f"k{max(numbers, default=0) + 1}"


def generate_local_document() -> dict:
    return {"active": "k1", "keys": {"k1": base64.b64encode(os.urandom(KEY_SIZE)).decode()}}


def keyring_rotated(document: dict, *, kms_client=None) -> tuple[dict, str]:
    """A copy of ``document`` with a new key added and made active, and the new key's id. Local keyrings get 32
    random bytes; KMS keyrings get a new symmetric KMS key."""
    keyring = keyring_from_document(document, kms_client=kms_client)
    key_id = next_key_id(keyring.key_ids())
    rotated = json.loads(json.dumps(document))
    if keyring.provider == LOCAL:
        rotated["keys"][key_id] = base64.b64encode(os.urandom(KEY_SIZE)).decode()
    elif isinstance(keyring, AwsKmsKeyring):
        answer = keyring._call("create_key", Description=f"Dossier key-encryption key {key_id}")
        rotated["keys"][key_id] = answer["KeyMetadata"]["Arn"]
    rotated["active"] = key_id
    keyring_from_document(rotated, kms_client=kms_client)
    return rotated, key_id


def keyring_document_write(path: str, document: dict) -> None:
    """Replace the keyring file atomically, readable by its owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
