"""Stored objects as tests see them, with artifact storage encrypted at rest (docs/encryption.md).

``plaintext_path`` gives a file tools can read (bagit, tar, verify_bundle); ``alter_plaintext`` changes a stored
object the way someone holding the keyring could (decrypt, change, re-encrypt), so digest checks are still
exercised; ``flip_stored_byte`` changes the ciphertext itself, which no key can open any more.
"""

from __future__ import annotations

import io
from pathlib import Path

from django.core.files.storage import storages

from exports.storage import storage_open_raw, storage_open_stream


def plaintext_bytes(name: str) -> bytes:
    with storage_open_stream(name) as handle:
        return handle.read()


def stored_bytes(name: str) -> bytes:
    handle = storage_open_raw(name)
    try:
        return handle.read()
    finally:
        handle.close()


def plaintext_path(name: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / Path(name).name
    path.write_bytes(plaintext_bytes(name))
    return path


def replace_plaintext(name: str, data: bytes) -> None:
    storage = storages["artifacts"]
    storage.delete(name)
    assert storage.save(name, io.BytesIO(data)) == name


def alter_plaintext(name: str, offset: int) -> None:
    data = bytearray(plaintext_bytes(name))
    data[offset] ^= 0xFF
    replace_plaintext(name, bytes(data))


def flip_stored_byte(name: str, offset: int) -> None:
    path = Path(storages["artifacts"].path(name))
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
