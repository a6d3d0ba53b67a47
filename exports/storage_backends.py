"""Artifact storage backends that encrypt at rest (docs/encryption.md): Django's filesystem storage and
django-storages' S3 storage, with every saved file encrypted on its way in and every opened file decrypted.

The helpers in ``exports/storage.py`` (staged archives, verified reads, evidence streams) check the same
``encrypts_at_rest`` property, so code that uses either path reads and writes plaintext.
"""

from __future__ import annotations

import contextlib

from django.core.files import File
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage

from exports.crypto import EncryptingReader
from exports.storage import storage_errors_as_unavailable, storage_keyring, storage_open_stream


class _EncryptingStorage:
    encrypts_at_rest = True

    def _save(self, name, content):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            content.seek(0)
        with storage_errors_as_unavailable(f"encrypting {name}"):
            sealed = File(EncryptingReader(content, storage_keyring()), name=name)
        return super()._save(name, sealed)

    def save_sealed(self, name, content):
        """Store bytes that are already encrypted (a staged archive) as they are."""
        return super()._save(name, content)

    def _open(self, name, mode="rb"):
        if set(mode) - {"r", "b"}:
            raise ValueError("encrypted storage opens files for reading only; write with save()")
        return File(storage_open_stream(name, self), name=name)


class EncryptedFileSystemStorage(_EncryptingStorage, FileSystemStorage):
    pass


class EncryptedS3Storage(_EncryptingStorage, S3Storage):
    pass
