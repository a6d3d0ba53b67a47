"""Artifact storage backends that encrypt at rest (docs/encryption.md): Django's filesystem storage and
django-storages' S3 storage, with every saved file encrypted on its way in and every opened file decrypted.

The filesystem backends also place the storage tiers (docs/storage-tiers-and-fixity.md): a name under
``.tiers/<tier>/`` lives under that tier's root when ``DOSSIER_TIER_ROOTS`` names one, else inside the location.

The helpers in ``exports/storage.py`` (staged archives, verified reads, evidence streams) check the same
``encrypts_at_rest`` property, so code that uses either path reads and writes plaintext.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.utils._os import safe_join
from storages.backends.s3 import S3Storage

from exports.crypto import EncryptingReader
from exports.storage import TIER_PREFIX, storage_errors_as_unavailable, storage_keyring, storage_open_stream


class TieredFileSystemStorage(FileSystemStorage):
    """A filesystem storage whose tier names (``.tiers/<tier>/…``) resolve under the tier's own root."""

    def path(self, name):
        if name.startswith(TIER_PREFIX):
            tier, _, rest = name[len(TIER_PREFIX) :].partition("/")
            root = settings.DOSSIER_TIER_ROOTS.get(tier)
            if root and rest:
                return safe_join(root, rest)
        return super().path(name)


class _EncryptingStorage(Storage):
    encrypts_at_rest = True

    def _save(self, name, content):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            content.seek(0)
        with storage_errors_as_unavailable(f"encrypting {name}"):
            sealed = File(cast(Any, EncryptingReader(content, storage_keyring())), name=name)
        return self._save_stored(name, sealed)

    def _save_stored(self, name, content):
        """The backend's own save, below the encryption (the concrete storage comes next in the MRO)."""
        return cast(Any, super())._save(name, content)  # the next class in the MRO (the concrete storage) has it

    def save_sealed(self, name, content):
        """Store bytes that are already encrypted (a staged archive) as they are."""
        return self._save_stored(name, content)

    def _open(self, name, mode="rb"):
        if set(mode) - {"r", "b"}:
            raise ValueError("encrypted storage opens files for reading only; write with save()")
        return File(storage_open_stream(name, self), name=name)


class EncryptedFileSystemStorage(_EncryptingStorage, TieredFileSystemStorage):
    pass


class EncryptedS3Storage(_EncryptingStorage, S3Storage):
    pass
