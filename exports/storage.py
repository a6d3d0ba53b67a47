"""Artifact storage over the Django storage API: namespaced names, atomic publish, verified reads, signed links.

Names: every artifact of an export version lives under ``<team>/<execution>/<export>/v<version>/``; staged
(unpublished) bytes live under ``.staging/`` and are never served.

Publishing is atomic on every backend: a reader sees either no artifact or the whole one.
- Filesystem: the archive is written to ``<root>/.staging/…`` on the same filesystem, fsynced, then renamed
  over the final name with ``os.replace``.
- S3 (django-storages): the archive is written to a local temporary file, uploaded under a staging key,
  server-side copied to the final key (S3 makes an object visible only once complete) and the staging key
  deleted.
- Any other backend: saved under a staging name, copied to the final name, staging name deleted.

Backend failures that may heal by themselves (I/O errors, an unreachable object store or key service) are raised
as ``StorageUnavailable`` so the packaging task can retry them; a full disk or an exhausted quota (``ENOSPC``,
``EDQUOT``) as its subclass ``StorageFull``, so the failure is named (docs/errors.md).

Staged bytes are named after the packaging run that writes them (``.staging/<export>-v<version>-r<run>-….partial``,
mode 0600), so whoever takes over from a lost worker removes exactly that run's leftovers.

Encryption at rest (docs/encryption.md) is a property of the storage (``encrypts_at_rest``, set by the backends in
``exports/storage_backends.py``): staged archives are encrypted as they are written, and every read here
decrypts, so sizes, digests, downloads and signatures are those of the plaintext. Objects stored before
encryption was turned on (no header) are read as they are until ``manage.py encrypt_existing`` converts them.
An object that does not open raises ``DecryptionFailed`` and no plaintext is served.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.utils import timezone

from exports.crypto import (
    DecryptingReader,
    DecryptionFailed,
    EncryptingReader,
    EncryptingWriter,
    KeyringUnavailable,
    is_encrypted,
    read_exact,
)
from exports.crypto.stream import MAGIC

STAGING_PREFIX = ".staging/"
# Objects moved to a colder tier on a filesystem storage live under this prefix (docs/storage-tiers-and-fixity.md).
TIER_PREFIX = ".tiers/"
READ_CHUNK = 8 << 20
LINK_SALT = "dossier.exports.artifact-link"
BUNDLE_SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz"}
BUNDLE_CONTENT_TYPES = {"zstd": "application/zstd", "gzip": "application/gzip"}


class StorageUnavailable(Exception):
    """The storage backend failed in a way that may heal by itself; the operation can be retried."""


class StorageFull(StorageUnavailable):
    """The storage has no room left (``ENOSPC``/``EDQUOT``): transient for packaging, 507 for an upload."""


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_error_is_full(exc: BaseException) -> bool:
    """True for a full disk or an exhausted quota, however deep the ``OSError`` sits in the exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StorageFull) or (isinstance(seen, OSError) and seen.errno in FULL_ERRNOS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ArtifactMissing(Exception):
    """The artifact's bytes are not in storage."""


class ArtifactIntegrityError(Exception):
    def __init__(self, expected: str, actual: str, size: int) -> None:
        super().__init__(f"stored archive has sha256 {actual}, expected {expected}")
        self.expected, self.actual, self.size = expected, actual, size


def artifact_storage() -> Storage:
    return storages["artifacts"]


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - boto3 is a dependency
        pass
    return tuple(errors)


TRANSIENT_STORAGE_ERRORS = _transient_errors()


@contextmanager
def storage_errors_as_unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except (ArtifactMissing, ArtifactIntegrityError, DecryptionFailed):
        raise
    except KeyringUnavailable as exc:
        raise StorageUnavailable(f"{what}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ArtifactMissing(str(exc)) from exc
    except TRANSIENT_STORAGE_ERRORS as exc:
        if _is_missing_object(exc):
            raise ArtifactMissing(str(exc)) from exc
        if storage_error_is_full(exc):
            raise StorageFull(f"{what}: {exc}") from exc
        raise StorageUnavailable(f"{what}: {exc}") from exc


def _is_missing_object(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = str(((response or {}).get("Error") or {}).get("Code", "")) if isinstance(response, dict) else ""
    return code in {"NoSuchKey", "404", "NotFound"}


def _is_object_store(storage: Storage) -> bool:
    return getattr(storage, "bucket_name", None) is not None and hasattr(storage, "connection")


def storage_encrypts(storage: Storage) -> bool:
    return bool(getattr(storage, "encrypts_at_rest", False))


def storage_keyring():
    from exports.encryption import storage_keyring as keyring

    return keyring()


class PrefixedStream:
    """A read-only stream whose first bytes were already read (to look for the encryption header)."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix, self._stream = prefix, stream

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._stream.read(size)
        if size is None or size < 0:
            data, self._prefix = self._prefix + self._stream.read(), b""
            return data
        data, self._prefix = self._prefix[:size], self._prefix[size:]
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()

    def readable(self) -> bool:
        return True

    def __enter__(self) -> PrefixedStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def plaintext_stream(raw: BinaryIO) -> BinaryIO:
    """The plaintext of stored bytes: decrypted when they carry the encryption header, as they are otherwise
    (objects stored before encryption). Takes ownership of ``raw``. Raises ``DecryptionFailed``."""
    try:
        prefix = read_exact(raw, len(MAGIC))
    except BaseException:
        raw.close()
        raise
    stream = PrefixedStream(prefix, raw)
    if is_encrypted(prefix):
        return cast(BinaryIO, DecryptingReader(stream, storage_keyring()))
    return cast(BinaryIO, stream)


def _raw_open(name: str, storage: Storage) -> BinaryIO:
    if isinstance(storage, FileSystemStorage):
        return open(storage.path(name), "rb", buffering=0)  # noqa: SIM115 - returned to the caller
    if _is_object_store(storage):
        s3: Any = storage  # django-storages' S3Storage, which ships no type information
        return s3.bucket.Object(s3._normalize_name(name)).get()["Body"]
    return storage.open(name, "rb")  # type: ignore[return-value]  # a File proxies a binary stream


def storage_open_raw(name: str, storage: Storage | None = None) -> BinaryIO:
    """The stored bytes as they are (ciphertext on an encrypting storage), for one sequential read."""
    storage = storage or artifact_storage()
    with storage_errors_as_unavailable(f"opening {name}"):
        return _raw_open(name, storage)


def storage_open_stream(name: str, storage: Storage | None = None) -> BinaryIO:
    """Open stored bytes for one sequential read of their plaintext without staging them locally first.

    (django-storages' S3 file object downloads the whole object before the first read; the raw response body
    streams instead.) Raises ``ArtifactMissing``, ``StorageUnavailable`` or ``DecryptionFailed``.
    """
    storage = storage or artifact_storage()
    with storage_errors_as_unavailable(f"opening {name}"):
        raw = _raw_open(name, storage)
        return plaintext_stream(raw) if storage_encrypts(storage) else raw


# --- Digests of the bytes as stored ---------------------------------------------------------------------------


class HashingWriter:
    """Passes writes on to ``sink`` and hashes them: the sha256 of the bytes as they reach storage (ciphertext
    when the storage encrypts), computed while they are written (docs/storage-tiers-and-fixity.md)."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink, self._hasher, self.size = sink, hashlib.sha256(), 0

    def write(self, data) -> int:
        view = memoryview(data)
        self._hasher.update(view)
        self.size += view.nbytes
        return self._sink.write(view)

    def flush(self) -> None:
        self._sink.flush()

    def writable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


class HashingReader:
    """A read-once, non-seekable view of ``source`` that hashes what is read from it (for uploads that pull)."""

    def __init__(self, source: Any) -> None:
        self._source, self._hasher, self.size, self._closed = source, hashlib.sha256(), 0, False

    @property
    def closed(self) -> bool:
        return self._closed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._hasher.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._closed = True

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


@dataclass(frozen=True)
class StoredWrite:
    name: str
    stored_sha256: str  # of the bytes as stored
    stored_size: int


def stored_object_save(name: str, content: Any, storage: Storage | None = None) -> StoredWrite:
    """Store ``content`` (plaintext) under ``name`` (or the name the storage picks), encrypting it when the storage
    encrypts, and return the sha256 of the bytes as stored, computed in the same pass."""
    storage = storage or artifact_storage()
    with contextlib.suppress(AttributeError, OSError, ValueError):
        content.seek(0)
    with storage_errors_as_unavailable(f"storing {name}"):
        if storage_encrypts(storage):
            hashed = HashingReader(EncryptingReader(content, storage_keyring()))
            sealed: Any = storage  # an encrypting storage (exports/storage_backends.py)
            stored_name = sealed.save_sealed(storage.get_available_name(name), File(cast(Any, hashed), name=name))
        else:
            hashed = HashingReader(content)
            stored_name = storage.save(name, File(cast(Any, hashed), name=name))
    return StoredWrite(stored_name, hashed.hexdigest(), hashed.size)


# --- Names ----------------------------------------------------------------------------------------------------


def export_directory(*, team_slug: str, execution_id: int, export_id: int, version: int) -> str:
    return f"{team_slug}/{execution_id}/{export_id}/v{version}/"


def bundle_name(*, export_id: int, version: int) -> str:
    return f"dossier-{export_id}-v{version}"


def artifact_name(*, team_slug: str, execution_id: int, export_id: int, version: int, compression: str) -> str:
    directory = export_directory(team_slug=team_slug, execution_id=execution_id, export_id=export_id, version=version)
    return directory + bundle_name(export_id=export_id, version=version) + BUNDLE_SUFFIXES[compression]


def staging_prefix_for(*, export_id: int, version: int, run_id: int | None = None) -> str:
    """The names staged for an export version start with this; with ``run_id``, those of one packaging run."""
    run = f"r{run_id}-" if run_id is not None else ""
    return f"{STAGING_PREFIX}{export_id}-v{version}-{run}"


def team_data_directory(*, team_slug: str, request_id: int) -> str:
    """Where a team data export requested through the API is kept: under the team's own prefix, so that erasing
    the team's content removes it too (docs/team-data.md)."""
    return f"{team_slug}/team-data/{request_id}/"


# --- Staged writes and atomic publish -------------------------------------------------------------------------


@dataclass
class StagedArtifact:
    storage: Storage
    staging_name: str
    local_path: str  # where the bytes are being written on this machine
    on_storage: bool  # True when local_path already is the staged object (filesystem storage)
    stored_sha256: str = ""  # of the staged bytes as stored, known once the staging block has ended

    def discard(self) -> None:
        with storage_errors_as_unavailable("discarding a staged artifact"):
            if os.path.exists(self.local_path):
                os.unlink(self.local_path)
            if not self.on_storage and self.storage.exists(self.staging_name):
                self.storage.delete(self.staging_name)


def _staged_open(*, storage: Storage, staging_name: str, run_id: int | None) -> tuple[StagedArtifact, BinaryIO]:
    if isinstance(storage, FileSystemStorage):
        local_path = storage.path(staging_name)
        os.makedirs(os.path.dirname(local_path), mode=0o750, exist_ok=True)
        fd = os.open(local_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        staged = StagedArtifact(storage, staging_name, local_path, on_storage=True)
    else:  # mkstemp creates the file 0600
        run = f"r{run_id}-" if run_id is not None else ""
        fd, local_path = tempfile.mkstemp(prefix=f"dossier-bundle-{run}", dir=settings.FILE_UPLOAD_TEMP_DIR)
        staged = StagedArtifact(storage, staging_name, local_path, on_storage=False)
    return staged, os.fdopen(fd, "wb")


def _discard_quietly(staged: StagedArtifact) -> None:
    """Best effort after a failure: the original error matters more; the next attempt purges what is left."""
    with suppress(StorageUnavailable):
        staged.discard()


@contextmanager
def artifact_staged(
    *,
    export_id: int = 0,
    version: int = 0,
    run_id: int | None = None,
    storage: Storage | None = None,
    prefix: str | None = None,
) -> Iterator[tuple[StagedArtifact, BinaryIO]]:
    """Open a staging file (0600) for a new archive, named after the packaging run. The caller writes plaintext
    (encrypted on its way to the file when the storage encrypts at rest), then calls :func:`artifact_publish` or
    ``discard()``; an exception inside the block discards the staged bytes. Write errors of the storage (a full
    disk included) leave the block as ``StorageFull`` or ``StorageUnavailable``. ``prefix`` names other archives
    than an export version's (team data)."""
    storage = storage or artifact_storage()
    prefix = prefix if prefix is not None else staging_prefix_for(export_id=export_id, version=version, run_id=run_id)
    staging_name = f"{prefix}{uuid.uuid4().hex}.partial"
    with storage_errors_as_unavailable("staging an artifact"):
        staged, out = _staged_open(storage=storage, staging_name=staging_name, run_id=run_id)
    hashed = HashingWriter(out)
    try:
        with storage_errors_as_unavailable("writing a staged artifact"), out:
            if storage_encrypts(storage):
                with storage_errors_as_unavailable("encrypting an artifact"):
                    sealed = EncryptingWriter(cast(BinaryIO, hashed), storage_keyring())
                yield staged, cast(BinaryIO, sealed)
                sealed.close()
            else:
                yield staged, cast(BinaryIO, hashed)
            out.flush()
            os.fsync(out.fileno())
        staged.stored_sha256 = hashed.hexdigest()
    except BaseException:
        _discard_quietly(staged)
        raise


def artifact_publish(staged: StagedArtifact, final_name: str) -> None:
    """Make the staged archive visible under ``final_name`` in one step (replacing identical earlier bytes)."""
    storage = staged.storage
    with storage_errors_as_unavailable("publishing an artifact"):
        if isinstance(storage, FileSystemStorage):
            target = storage.path(final_name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(staged.local_path, target)
            _fsync_directory(os.path.dirname(target))
            return
        try:
            with open(staged.local_path, "rb") as source:
                # staged bytes are already encrypted when the storage encrypts: stored as they are
                save = getattr(storage, "save_sealed", storage.save)
                staged_name = save(staged.staging_name, File(source))
            _copy_within(storage, staged_name, final_name)
            storage.delete(staged_name)
        finally:
            os.unlink(staged.local_path)


def _copy_within(storage: Storage, source: str, target: str) -> None:
    if _is_object_store(storage):  # django-storages S3: server-side (multipart for large objects) copy
        s3: Any = storage  # S3Storage ships no type information
        s3.connection.meta.client.copy(
            {"Bucket": s3.bucket_name, "Key": s3._normalize_name(source)},
            s3.bucket_name,
            s3._normalize_name(target),
        )
        return
    if storage.exists(target):
        storage.delete(target)
    with storage.open(source, "rb") as handle:
        storage.save(target, handle)


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staged_leftovers_purge(
    *, export_id: int, version: int, run_id: int | None = None, storage: Storage | None = None
) -> int:
    """Delete staged bytes a dead worker left for this export version (with ``run_id``: that run's only);
    returns how many were removed.

    Only call this while holding the export's packaging lease, so no live writer owns them.
    """
    storage = storage or artifact_storage()
    prefix = staging_prefix_for(export_id=export_id, version=version, run_id=run_id)
    removed = 0
    if run_id is not None and not isinstance(storage, FileSystemStorage):
        removed += _local_leftovers_purge(run_id)
    with storage_errors_as_unavailable("purging staged artifacts"):
        try:
            _, names = storage.listdir(STAGING_PREFIX.rstrip("/"))
        except FileNotFoundError:
            return removed
        for name in names:
            full = STAGING_PREFIX + name
            if full.startswith(prefix):
                storage.delete(full)
                removed += 1
    return removed


def _local_leftovers_purge(run_id: int) -> int:
    """The local file an object-store run was writing, when it ran on this host (a lost worker's elsewhere stays
    with its host's temporary directory)."""
    directory = settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir()
    removed = 0
    for path in Path(directory).glob(f"dossier-bundle-r{run_id}-*"):
        with suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


# --- Verified reads -------------------------------------------------------------------------------------------


def _hash_into(stream: BinaryIO, sink: BinaryIO | None = None) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    buffer = memoryview(bytearray(READ_CHUNK))
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(buffer)
            chunk = buffer[:count]
        else:
            data = stream.read(READ_CHUNK)
            count, chunk = len(data), memoryview(data)
        if not count:
            return hasher.hexdigest(), size
        hasher.update(chunk)
        if sink is not None:
            sink.write(chunk)
        size += count


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """The sha256 and size of everything left in ``stream``, read in large buffers (hashlib releases the GIL)."""
    return _hash_into(stream)


def artifact_exists(name: str, storage: Storage | None = None) -> bool:
    storage = storage or artifact_storage()
    with storage_errors_as_unavailable("checking an artifact"):
        return storage.exists(name)


def artifact_open_verified(name: str, *, sha256: str, storage: Storage | None = None) -> BinaryIO:
    """Return a handle positioned at the start of bytes whose sha256 has just been checked.

    The bytes checked are the bytes served: on the filesystem the same open file is hashed then rewound (an
    atomic replacement of the name cannot swap it); elsewhere the stored object is spooled to a temporary file
    while it is read. On an encrypting storage the check decrypts the whole object first, so a ciphertext that
    does not open (``DecryptionFailed``) is refused before a byte is served. Raises ``ArtifactMissing`` or
    ``ArtifactIntegrityError``; the caller closes the handle.
    """
    storage = storage or artifact_storage()
    encrypted = storage_encrypts(storage)
    with storage_errors_as_unavailable("reading an artifact"):
        if isinstance(storage, FileSystemStorage):
            handle = _raw_open(name, storage)
        else:
            handle = tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115 - returned
            source = _raw_open(name, storage)
            try:
                _hash_into(source, handle)
            except BaseException:
                handle.close()
                raise
            finally:
                source.close()
            handle.seek(0)
        try:
            actual, size = _hash_into(_plaintext_view(handle) if encrypted else handle)
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
    if actual != sha256:
        handle.close()
        raise ArtifactIntegrityError(sha256, actual, size)
    return plaintext_stream(handle) if encrypted else handle


class _Unclosing:
    """A view of a stream that leaves it open when the view is closed (the verifying pass rewinds it)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def close(self) -> None:
        pass


def _plaintext_view(handle: BinaryIO) -> BinaryIO:
    return plaintext_stream(cast(BinaryIO, _Unclosing(handle)))


@contextmanager
def artifact_local_path(name: str, storage: Storage | None = None) -> Iterator[str]:
    """A local path holding the artifact's (plaintext) bytes, for tools that read files: the file itself on an
    unencrypted filesystem backend, a temporary copy otherwise."""
    storage = storage or artifact_storage()
    if isinstance(storage, FileSystemStorage) and not storage_encrypts(storage):
        path = storage.path(name)
        if not os.path.exists(path):
            raise ArtifactMissing(name)
        yield path
        return
    with tempfile.TemporaryDirectory(dir=settings.FILE_UPLOAD_TEMP_DIR) as directory:
        path = os.path.join(directory, os.path.basename(name))
        source = storage_open_stream(name, storage)
        with storage_errors_as_unavailable("reading an artifact"), open(path, "wb") as out:
            try:
                _hash_into(source, out)
            finally:
                source.close()
        yield path


def stream_chunks(handle: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    try:
        while chunk := handle.read(chunk_size):
            yield chunk
    finally:
        handle.close()


# --- Signed, time-limited download links ----------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadLink:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class DownloadGrant:
    artifact_id: int
    user_id: int | None
    sha256_prefix: str


def download_link_sign(*, artifact_id: int, sha256: str, user_id: int | None) -> DownloadLink:
    ttl = settings.DOSSIER_DOWNLOAD_LINK_TTL_SECONDS
    token = signing.TimestampSigner(salt=LINK_SALT).sign_object({"a": artifact_id, "u": user_id, "s": sha256[:16]})
    return DownloadLink(token=token, expires_at=timezone.now() + timedelta(seconds=ttl))


class LinkExpired(Exception):
    pass


class LinkInvalid(Exception):
    pass


def download_link_unsign(token: str) -> DownloadGrant:
    try:
        value = signing.TimestampSigner(salt=LINK_SALT).unsign_object(
            token, max_age=settings.DOSSIER_DOWNLOAD_LINK_TTL_SECONDS
        )
    except signing.SignatureExpired as exc:
        raise LinkExpired(str(exc)) from exc
    except (signing.BadSignature, ValueError) as exc:
        raise LinkInvalid(str(exc)) from exc
    if not isinstance(value, dict) or not isinstance(value.get("a"), int):
        raise LinkInvalid("malformed link")
    return DownloadGrant(artifact_id=value["a"], user_id=value.get("u"), sha256_prefix=str(value.get("s", "")))
