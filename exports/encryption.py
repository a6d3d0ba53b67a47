"""The keyring in use for encryption at rest (docs/encryption.md), read from ``DOSSIER_KEYRING``.

``DOSSIER_KEYRING`` holds the keyring JSON or names a file holding it. Left empty, a development keyring is
generated on first use in ``var/keyring.json`` (mode 0600), so encryption is always on; ``check --deploy`` warns
when a deployment relies on that file instead of setting the variable. The keyring is re-read when its file
changes, so a rotation is picked up without a restart.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from django.conf import settings

from exports.crypto import (
    Keyring,
    generate_local_document,
    keyring_document_read,
    keyring_document_write,
    keyring_from_document,
)

_lock = threading.Lock()
_cache: dict[tuple, Keyring] = {}


def keyring_file() -> str | None:
    """The path of the keyring file in use, or None when ``DOSSIER_KEYRING`` holds the JSON itself."""
    spec = (settings.DOSSIER_KEYRING or "").strip()
    if spec.startswith("{"):
        return None
    if spec:
        return spec
    path = Path(settings.DOSSIER_KEYRING_DEFAULT_PATH)
    if not path.exists():
        _generate_once(path)
    return str(path)


def _generate_once(path: Path) -> None:
    """Write a new development keyring unless another process got there first: the file is linked into place,
    never replaced, so two processes starting together cannot end up encrypting under different keyrings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    keyring_document_write(str(draft), generate_local_document())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(draft)


def storage_keyring() -> Keyring:
    """The keyring objects are encrypted and opened with (raises ``KeyringInvalid`` when it is unusable)."""
    path = keyring_file()
    spec = path or settings.DOSSIER_KEYRING
    cache_key = (spec, os.stat(path).st_mtime_ns if path and os.path.exists(path) else None)
    keyring = _cache.get(cache_key)
    if keyring is None:
        keyring = keyring_from_document(keyring_document_read(spec))
        with _lock:
            _cache.clear()
            _cache[cache_key] = keyring
    return keyring
