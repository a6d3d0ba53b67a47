"""The at-rest format on its own: round trips, flat memory, and every way of tampering is detected."""

from __future__ import annotations

import io
import os
from dataclasses import replace

import pytest

from exports.crypto import (
    MAGIC,
    DecryptingReader,
    DecryptionFailed,
    EncryptingReader,
    EncryptingWriter,
    LocalKeyring,
    decrypt_bytes,
    encrypt_bytes,
    read_header,
    unwrap_data_key,
)
from exports.crypto.stream import TAG_SIZE

SEGMENT = 64


def keyring(active="k1", **keys) -> LocalKeyring:
    keys = keys or {"k1": os.urandom(32)}
    return LocalKeyring(active=active, keys=keys)


@pytest.fixture
def ring():
    return keyring()


def chunks_of(blob: bytes) -> tuple[bytes, list[bytes]]:
    header = read_header(io.BytesIO(blob))
    size = len(header.to_bytes())
    body = blob[size:]
    step = SEGMENT + TAG_SIZE
    return blob[:size], [body[i : i + step] for i in range(0, len(body), step)]


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 7])
def test_round_trip_at_every_chunk_boundary(ring, size):
    plaintext = os.urandom(size)
    blob = encrypt_bytes(plaintext, ring, segment_size=SEGMENT)
    assert blob.startswith(MAGIC)
    assert decrypt_bytes(blob, ring) == plaintext
    sink = io.BytesIO()
    with EncryptingWriter(sink, ring, segment_size=SEGMENT) as out:
        for start in range(0, size, 5):
            out.write(plaintext[start : start + 5])
    assert decrypt_bytes(sink.getvalue(), ring) == plaintext
    pulled = EncryptingReader(io.BytesIO(plaintext), ring, segment_size=SEGMENT)
    assert decrypt_bytes(b"".join(iter(lambda: pulled.read(7), b"")), ring) == plaintext


def test_ciphertext_hides_the_plaintext_and_every_object_differs(ring):
    plaintext = b"PLANTED-MARKER-" * 100
    first, second = (encrypt_bytes(plaintext, ring, segment_size=SEGMENT) for _ in range(2))
    assert b"PLANTED-MARKER" not in first
    assert first != second
    assert read_header(io.BytesIO(first)).object_id != read_header(io.BytesIO(second)).object_id


def test_flipping_any_byte_is_detected(ring):
    blob = encrypt_bytes(os.urandom(3 * SEGMENT + 5), ring, segment_size=SEGMENT)
    for position in range(0, len(blob), 7):
        flipped = bytearray(blob)
        flipped[position] ^= 0x01
        with pytest.raises(DecryptionFailed):
            decrypt_bytes(bytes(flipped), ring)


def test_truncation_at_and_between_chunk_boundaries_is_detected(ring):
    blob = encrypt_bytes(os.urandom(3 * SEGMENT), ring, segment_size=SEGMENT)
    header, chunks = chunks_of(blob)
    for cut in range(1, len(chunks)):
        with pytest.raises(DecryptionFailed):
            decrypt_bytes(header + b"".join(chunks[:cut]), ring)
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(blob[:-1], ring)
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(header, ring)
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(blob + b"\0", ring)


def test_reordering_chunks_is_detected(ring):
    blob = encrypt_bytes(os.urandom(4 * SEGMENT + 1), ring, segment_size=SEGMENT)
    header, chunks = chunks_of(blob)
    chunks[1], chunks[2] = chunks[2], chunks[1]
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(header + b"".join(chunks), ring)


def test_swapping_chunks_or_headers_between_objects_is_detected(ring):
    one = encrypt_bytes(os.urandom(3 * SEGMENT + 1), ring, segment_size=SEGMENT)
    two = encrypt_bytes(os.urandom(3 * SEGMENT + 1), ring, segment_size=SEGMENT)
    header_one, chunks_one = chunks_of(one)
    header_two, chunks_two = chunks_of(two)
    mixed = list(chunks_one)
    mixed[1] = chunks_two[1]
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(header_one + b"".join(mixed), ring)
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(header_two + b"".join(chunks_one), ring)
    # the wrapped data key of one object does not unwrap in another object's header
    parsed_one, parsed_two = read_header(io.BytesIO(one)), read_header(io.BytesIO(two))
    grafted = replace(parsed_two, key_id=parsed_one.key_id, wrapped_key=parsed_one.wrapped_key)
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(grafted.to_bytes() + b"".join(chunks_two), ring)


def test_a_wrong_or_missing_key_fails_before_any_plaintext(ring):
    blob = encrypt_bytes(b"secret" * 100, ring, segment_size=SEGMENT)
    with pytest.raises(DecryptionFailed):
        DecryptingReader(io.BytesIO(blob), keyring())  # same id, other key
    with pytest.raises(DecryptionFailed):
        DecryptingReader(io.BytesIO(blob), keyring(active="k9", k9=os.urandom(32)))  # id unknown
    with pytest.raises(DecryptionFailed, match="not encrypted"):
        decrypt_bytes(b"plain bytes, no header at all", ring)


def test_a_failing_chunk_releases_nothing_of_itself(ring):
    plaintext = os.urandom(3 * SEGMENT)
    blob = bytearray(encrypt_bytes(plaintext, ring, segment_size=SEGMENT))
    blob[-3] ^= 0xFF  # inside the last chunk
    reader = DecryptingReader(io.BytesIO(bytes(blob)), ring)
    released = bytearray()
    with pytest.raises(DecryptionFailed):
        while data := reader.read(10):
            released += data
    assert len(released) <= 2 * SEGMENT and plaintext.startswith(bytes(released))


def test_rewrapping_changes_only_the_header(ring):
    old = os.urandom(32)
    both = LocalKeyring(active="k2", keys={"k1": old, "k2": os.urandom(32)})
    blob = encrypt_bytes(b"payload" * 50, LocalKeyring(active="k1", keys={"k1": old}), segment_size=SEGMENT)
    stream = io.BytesIO(blob)
    header = read_header(stream)
    rewrapped = header.rewrapped(both, unwrap_data_key(header, both))
    assert rewrapped.key_id == "k2"
    new_blob = rewrapped.to_bytes() + stream.read()
    assert new_blob.endswith(blob[len(header.to_bytes()) :])
    only_new = LocalKeyring(active="k2", keys={"k2": both._keys["k2"]})
    assert decrypt_bytes(new_blob, only_new) == b"payload" * 50
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(blob, only_new)


def test_memory_is_one_chunk_whatever_the_size(ring):
    import tracemalloc

    class Zeros(io.RawIOBase):
        def __init__(self, size):
            self.left = size

        def readable(self):
            return True

        def readinto(self, buffer):
            count = min(len(buffer), self.left)
            buffer[:count] = bytes(count)
            self.left -= count
            return count

    class Sink(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            return len(data)

    size = 64 << 20
    tracemalloc.start()
    sink = Sink()
    with EncryptingWriter(sink, ring) as out:
        source = Zeros(size)
        while block := source.read(1 << 20):
            out.write(block)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20


def test_a_chunk_that_fails_leaves_nothing_in_the_callers_buffer(ring):
    plaintext = b"P" * (3 * SEGMENT)
    blob = bytearray(encrypt_bytes(plaintext, ring, segment_size=SEGMENT))
    blob[-3] ^= 0xFF  # inside the last chunk
    reader = DecryptingReader(io.BytesIO(bytes(blob)), ring)
    buffer = bytearray(8 * SEGMENT)
    with pytest.raises(DecryptionFailed):
        reader.readinto(buffer)
    assert bytes(buffer[2 * SEGMENT :]) == bytes(6 * SEGMENT)  # the failing chunk's slot holds no plaintext
    whole = DecryptingReader(io.BytesIO(encrypt_bytes(plaintext, ring, segment_size=SEGMENT)), ring)
    assert whole.readinto(buffer) == len(plaintext) and bytes(buffer[: len(plaintext)]) == plaintext
