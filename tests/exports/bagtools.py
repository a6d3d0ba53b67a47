"""Helpers to take a bundle apart and put a (tampered) one back together, as an attacker would."""

from __future__ import annotations

import tarfile
from pathlib import Path

from exports.bundle import extract_bundle


def unpack(archive: str | Path, destination: Path) -> Path:
    return extract_bundle(str(archive), destination)


def repack(bag: Path, archive: Path) -> Path:
    """A .tar.gz of ``bag`` (the verifier recognises gzip by its magic bytes)."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bag, arcname=bag.name)
    return archive


def flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
