"""Operations on the encryption at rest of stored objects (docs/encryption.md): rotate the keyring, re-wrap data
keys, encrypt objects stored before encryption, prove that a keyring opens everything.

Every stored object is named by a row: an artifact (``ExportArtifact.storage_path``) or an evidence file
(``Evidence.storage_path``); the row's sha256 is the plaintext's, its ``stored_sha256`` that of the bytes as stored,
which a rewrite here records anew. Each operation handles one object at a time and
leaves it either as it was or fully replaced (atomic rename on the filesystem, a single PUT on S3), so a run that
stops can simply be started again: objects already done are recognised and skipped.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.db import transaction

from exports.crypto import (
    DecryptionFailed,
    EncryptingWriter,
    Keyring,
    KeyringInvalid,
    is_encrypted,
    keyring_document_read,
    keyring_document_write,
    keyring_rotated,
    read_header,
    unwrap_data_key,
)
from exports.crypto.stream import MAGIC, decrypted_chunks
from exports.encryption import keyring_file, storage_keyring
from exports.models import Evidence, ExportArtifact
from exports.storage import (
    READ_CHUNK,
    ArtifactMissing,
    PrefixedStream,
    artifact_storage,
    storage_errors_as_unavailable,
    storage_open_raw,
)
from governance.services.audit import audit_record

DONE, SKIPPED, FAILED, MISSING, PLAINTEXT = "done", "skipped", "failed", "missing", "plaintext"


@dataclass(frozen=True)
class StoredObject:
    kind: str  # "artifact" | "evidence"
    pk: int
    name: str
    sha256: str


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[StoredObject, str]] = field(default_factory=list)

    def add(self, outcome: str, obj: StoredObject, reason: str = "") -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome in (FAILED, MISSING):
            self.failures.append((obj, reason))

    def __getitem__(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


Progress = Callable[[int, int, StoredObject, str], None]


def stored_objects() -> list[StoredObject]:
    """Every object in artifact storage that a row names, artifacts first, each kind in id order."""
    artifacts = ExportArtifact.objects.order_by("pk").values_list("pk", "storage_path", "sha256")
    evidence = Evidence.objects.exclude(storage_path="").order_by("pk").values_list("pk", "storage_path", "sha256")
    return [StoredObject("artifact", pk, name, sha) for pk, name, sha in artifacts.iterator()] + [
        StoredObject("evidence", pk, name, sha) for pk, name, sha in evidence.iterator()
    ]


def _each(objects: Iterable[StoredObject], handle: Callable[[StoredObject], str], progress: Progress | None) -> Tally:
    objects = list(objects)
    tally = Tally()
    for index, obj in enumerate(objects, start=1):
        try:
            outcome, reason = handle(obj), ""
        except ArtifactMissing:
            outcome, reason = MISSING, "missing from storage"
        except DecryptionFailed as exc:
            outcome, reason = FAILED, exc.message
        tally.add(outcome, obj, reason)
        if progress is not None:
            progress(index, len(objects), obj, outcome)
    return tally


def _replace(storage: Storage, obj: StoredObject, chunks: Iterator[bytes]) -> None:
    """Write ``chunks`` (an already encrypted object) over the object in one step, then record the sha256 of its
    new stored bytes (docs/storage-tiers-and-fixity.md), hashed as they are written."""
    hasher = hashlib.sha256()
    _write_over(storage, obj.name, _hashed(chunks, hasher))
    model = ExportArtifact if obj.kind == "artifact" else Evidence
    model.objects.filter(pk=obj.pk).update(stored_sha256=hasher.hexdigest())


def _hashed(chunks: Iterator[bytes], hasher) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def _write_over(storage: Storage, name: str, chunks: Iterator[bytes]) -> None:
    with storage_errors_as_unavailable(f"replacing {name}"):
        if isinstance(storage, FileSystemStorage):
            target = storage.path(name)
            fd, temporary = tempfile.mkstemp(prefix=".rewrite-", dir=os.path.dirname(target))
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if storage.file_permissions_mode is not None:
                    os.chmod(temporary, storage.file_permissions_mode)
                os.replace(temporary, target)
            except BaseException:
                if os.path.exists(temporary):
                    os.unlink(temporary)
                raise
            return
        with tempfile.TemporaryFile() as spool:  # an object store takes a whole body: spool, then one PUT
            for chunk in chunks:
                spool.write(chunk)
            spool.seek(0)
            cast(Any, storage).save_sealed(name, File(spool))  # an encrypting storage (exports/storage_backends.py)


def _copy_rest(source, first: bytes = b"") -> Iterator[bytes]:
    if first:
        yield first
    while data := source.read(READ_CHUNK):
        yield data


# --- Rotation ---------------------------------------------------------------------------------------------------


def keyring_rotate(*, path: str | None = None) -> str:
    """Add a new key-encryption key to the keyring file and make it the active one; returns its id. Old keys stay,
    so every object still opens until ``rewrap_data_keys`` has moved it to the new key."""
    path = path or keyring_file()
    if path is None:
        raise KeyringInvalid(
            "DOSSIER_KEYRING holds the keyring JSON itself; rotate a keyring file (--keyring-file)",
            code="keyring_not_a_file",
        )
    document = keyring_document_read(path)
    rotated, key_id = keyring_rotated(document)
    with transaction.atomic():
        audit_record(
            action="encryption.key_rotated",
            payload={"key_id": key_id, "provider": rotated.get("provider", "local"), "keys": sorted(rotated["keys"])},
            object_type="keyring",
            object_id=key_id,
        )
        keyring_document_write(path, rotated)
    return key_id


# --- Re-wrapping ------------------------------------------------------------------------------------------------


def object_rewrap(obj: StoredObject, *, keyring: Keyring, storage: Storage, dry_run: bool = False) -> str:
    source = storage_open_raw(obj.name, storage)
    try:
        prefix = source.read(len(MAGIC))
        if not is_encrypted(prefix):
            return PLAINTEXT
        stream = PrefixedStream(prefix, source)
        header = read_header(stream)
        if header.key_id == keyring.active:
            return SKIPPED
        data_key = unwrap_data_key(header, keyring)
        if dry_run:
            return DONE
        rewrapped = header.rewrapped(keyring, data_key)
        _replace(storage, obj, _copy_rest(stream, rewrapped.to_bytes()))
        return DONE
    finally:
        source.close()


def data_keys_rewrap(
    *, dry_run: bool = False, progress: Progress | None = None, keyring: Keyring | None = None
) -> Tally:
    """Re-wrap every object's data key under the active key-encryption key; the chunks are not touched."""
    return _each_stored_object(
        object_rewrap,
        action="encryption.data_keys_rewrapped",
        keyring=keyring or storage_keyring(),
        dry_run=dry_run,
        progress=progress,
    )


def _each_stored_object(step, *, action: str, keyring: Keyring, dry_run: bool, progress: Progress | None) -> Tally:
    """Run ``step`` over every stored object with the active keyring; a real run is audited with its counts."""
    storage = artifact_storage()
    tally = _each(stored_objects(), lambda obj: step(obj, keyring=keyring, storage=storage, dry_run=dry_run), progress)
    if not dry_run:
        with transaction.atomic():
            audit_record(
                action=action,
                payload={"active_key": keyring.active, **tally.counts},
                object_type="keyring",
                object_id=keyring.active,
            )
    return tally


# --- Encrypting objects stored before encryption ----------------------------------------------------------------


def object_encrypt(obj: StoredObject, *, keyring: Keyring, storage: Storage, dry_run: bool = False) -> str:
    """Encrypt one plaintext object in place, only if its bytes still hash to the row's sha256."""
    source = storage_open_raw(obj.name, storage)
    try:
        prefix = source.read(len(MAGIC))
        if is_encrypted(prefix):
            return SKIPPED
        if dry_run:
            return DONE
        with tempfile.TemporaryFile() as sealed:
            hasher = hashlib.sha256()
            with EncryptingWriter(sealed, keyring) as out:
                for data in _copy_rest(source, prefix):
                    hasher.update(data)
                    out.write(data)
            if hasher.hexdigest() != obj.sha256:
                raise DecryptionFailed(
                    f"its bytes hash to {hasher.hexdigest()}, not the recorded {obj.sha256}; left as it is",
                    code="digest_mismatch",
                )
            sealed.seek(0)
            _replace(storage, obj, _copy_rest(sealed))
        return DONE
    finally:
        source.close()


def existing_objects_encrypt(*, dry_run: bool = False, progress: Progress | None = None) -> Tally:
    return _each_stored_object(
        object_encrypt,
        action="encryption.existing_objects_encrypted",
        keyring=storage_keyring(),
        dry_run=dry_run,
        progress=progress,
    )


# --- Verification -----------------------------------------------------------------------------------------------


def object_open_check(obj: StoredObject, *, keyring: Keyring, storage: Storage) -> str:
    """Decrypt one object completely with ``keyring`` and check its plaintext against the row's sha256."""
    source = storage_open_raw(obj.name, storage)
    try:
        prefix = source.read(len(MAGIC))
        stream = PrefixedStream(prefix, source)
        hasher = hashlib.sha256()
        if is_encrypted(prefix):
            outcome = DONE
            for chunk in decrypted_chunks(stream, keyring):
                hasher.update(chunk)
        else:
            outcome = PLAINTEXT
            for chunk in _copy_rest(stream):
                hasher.update(chunk)
        if hasher.hexdigest() != obj.sha256:
            raise DecryptionFailed(
                f"it opens but its plaintext hashes to {hasher.hexdigest()}, not the recorded {obj.sha256}",
                code="digest_mismatch",
            )
        return outcome
    finally:
        source.close()


def keyring_verify(*, keyring: Keyring | None = None, progress: Progress | None = None) -> Tally:
    """Open every stored object with ``keyring`` (by default the one in use) and check its digest."""
    keyring = keyring or storage_keyring()
    storage = artifact_storage()
    return _each(stored_objects(), lambda obj: object_open_check(obj, keyring=keyring, storage=storage), progress)
