"""Streaming envelope encryption: AES-256-GCM over fixed-size chunks, after Tink's AES-GCM-HKDF streaming AEAD.

Byte layout (big-endian; docs/encryption.md describes it for operators)::

    offset  size  field
    0       8     magic  b"\\x89DOSENC\\n"
    8       1     format version (1)
    9       4     segment size S: plaintext bytes per chunk
    13      16    object id (random per object)
    29      7     nonce prefix (random per object)
    36      1     length L of the key-encryption key id
    37      L     key-encryption key id (ASCII), e.g. "k3"
    37+L    2     length W of the wrapped data key
    39+L    W     the data key wrapped by that key-encryption key, bound to the object id
    then    ...   chunks: AES-256-GCM ciphertext of S plaintext bytes + 16-byte tag; the last chunk holds 0..S bytes

Each object has its own random 256-bit data key. The chunk key is HKDF-SHA256(data key, salt=object id); chunk i
is sealed with nonce ``prefix || uint32(i) || last-flag`` and the header's first 36 bytes as associated data, so
a chunk cannot be flipped, dropped, reordered, moved into another object or passed off as the end. The key-wrap
part of the header is outside the associated data: re-wrapping under a new key-encryption key rewrites only the
header, never the chunks. Memory is one chunk each way, whatever the object's size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import DecryptionFailed

MAGIC = b"\x89DOSENC\n"
FORMAT_VERSION = 1
DEFAULT_SEGMENT_SIZE = 1 << 20
MAX_SEGMENT_SIZE = 64 << 20
TAG_SIZE = 16
OBJECT_ID_SIZE = 16
NONCE_PREFIX_SIZE = 7
DATA_KEY_SIZE = 32
_FIXED = struct.Struct(">8sBI16s7s")  # magic, version, segment size, object id, nonce prefix
FIXED_HEADER_SIZE = _FIXED.size  # 36
_HKDF_INFO = b"dossier at-rest chunk key v1"


class ByteSource(Protocol):
    """Anything with a binary ``read``: a file, a socket body, another reader."""

    def read(self, size: int = -1, /) -> bytes: ...


class ClosableByteSource(ByteSource, Protocol):
    def close(self) -> None: ...


class KeyWrapper(Protocol):
    """What the stream needs from a keyring (see keyring.py)."""

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes: ...


def wrap_context(object_id: bytes) -> bytes:
    """What a wrapped data key is bound to: it unwraps only in the header of its own object."""
    return b"dossier-data-key:" + object_id


@dataclass(frozen=True)
class Header:
    segment_size: int
    object_id: bytes
    nonce_prefix: bytes
    key_id: str
    wrapped_key: bytes

    @property
    def fixed(self) -> bytes:
        return _FIXED.pack(MAGIC, FORMAT_VERSION, self.segment_size, self.object_id, self.nonce_prefix)

    def to_bytes(self) -> bytes:
        key_id = self.key_id.encode("ascii")
        return (
            self.fixed
            + struct.pack(">B", len(key_id))
            + key_id
            + struct.pack(">H", len(self.wrapped_key))
            + self.wrapped_key
        )

    def rewrapped(self, keyring: KeyWrapper, data_key: bytes) -> Header:
        key_id, wrapped = keyring.wrap(data_key, wrap_context(self.object_id))
        return Header(self.segment_size, self.object_id, self.nonce_prefix, key_id, wrapped)


def is_encrypted(prefix: bytes) -> bool:
    """Whether stored bytes starting with ``prefix`` (at least 8 bytes) are in this format."""
    return prefix[: len(MAGIC)] == MAGIC


def read_exact(source: ByteSource, size: int) -> bytes:
    """``size`` bytes from ``source``, fewer only at its end (a stream may answer a read with less)."""
    parts, remaining = [], size
    while remaining > 0:
        data = source.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


def read_header(source: ByteSource) -> Header:
    """Read and parse the header at the start of ``source``; raises ``DecryptionFailed`` if it is not one."""
    fixed = read_exact(source, FIXED_HEADER_SIZE)
    if len(fixed) < FIXED_HEADER_SIZE or not is_encrypted(fixed):
        raise DecryptionFailed("the object is not encrypted in the Dossier format (no header)")
    _, version, segment_size, object_id, nonce_prefix = _FIXED.unpack(fixed)
    if version != FORMAT_VERSION:
        raise DecryptionFailed(f"unknown encryption format version {version}")
    if not 0 < segment_size <= MAX_SEGMENT_SIZE:
        raise DecryptionFailed(f"segment size {segment_size} is out of range")
    length = read_exact(source, 1)
    key_id = read_exact(source, length[0]) if length else b""
    wrapped_length = read_exact(source, 2)
    if not length or len(key_id) != length[0] or len(wrapped_length) != 2:
        raise DecryptionFailed("the encryption header is truncated")
    (size,) = struct.unpack(">H", wrapped_length)
    wrapped = read_exact(source, size)
    if len(wrapped) != size:
        raise DecryptionFailed("the encryption header is truncated")
    try:
        key_name = key_id.decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionFailed("the key id in the header is not ASCII") from None
    return Header(segment_size, object_id, nonce_prefix, key_name, wrapped)


def _chunk_cipher(data_key: bytes, object_id: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=object_id, info=_HKDF_INFO).derive(data_key)
    return AESGCM(key)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 1 << 32:
        raise DecryptionFailed("the object has more chunks than the format allows")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def unwrap_data_key(header: Header, keyring: KeyWrapper) -> bytes:
    data_key = keyring.unwrap(header.key_id, header.wrapped_key, wrap_context(header.object_id))
    if len(data_key) != DATA_KEY_SIZE:
        raise DecryptionFailed("the unwrapped data key has the wrong length")
    return data_key


class _Sealer:
    """Seals consecutive chunks of one new object."""

    def __init__(self, keyring: KeyWrapper, segment_size: int) -> None:
        if not 0 < segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size {segment_size} is out of range")
        data_key = os.urandom(DATA_KEY_SIZE)
        object_id = os.urandom(OBJECT_ID_SIZE)
        key_id, wrapped = keyring.wrap(data_key, wrap_context(object_id))
        self.header = Header(segment_size, object_id, os.urandom(NONCE_PREFIX_SIZE), key_id, wrapped)
        self._cipher = _chunk_cipher(data_key, object_id)
        self._aad = self.header.fixed
        self._index = 0

    def seal(self, plaintext: bytes, *, last: bool) -> bytes:
        sealed = self._cipher.encrypt(_nonce(self.header.nonce_prefix, self._index, last), plaintext, self._aad)
        self._index += 1
        return sealed

    def seal_into(self, plaintext, out, *, last: bool) -> None:
        """Seal ``plaintext`` into ``out`` (exactly ``len(plaintext) + 16`` bytes): no allocation per chunk."""
        self._cipher.encrypt_into(_nonce(self.header.nonce_prefix, self._index, last), plaintext, self._aad, out)
        self._index += 1


class EncryptingWriter:
    """A write-only file object: plaintext in, the encrypted object out to ``sink``. ``close()`` seals the last
    chunk (it does not close ``sink``); bytes written before ``close()`` are not a complete object."""

    def __init__(self, sink: BinaryIO, keyring: KeyWrapper, *, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        self._sink = sink
        self._sealer = _Sealer(keyring, segment_size)
        self._segment = segment_size
        self._buffer = bytearray(segment_size)  # plaintext not yet sealed: at most one chunk
        self._buffered = 0
        self._sealed = memoryview(bytearray(segment_size + TAG_SIZE))
        self._closed = False
        self.plaintext_size = 0
        sink.write(self._sealer.header.to_bytes())

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        return True

    def _emit(self, plaintext, *, last: bool) -> None:
        out = self._sealed[: len(plaintext) + TAG_SIZE]
        self._sealer.seal_into(plaintext, out, last=last)
        self._sink.write(out)

    def write(self, data) -> int:
        if self._closed:
            raise ValueError("write to a closed EncryptingWriter")
        view = memoryview(data).cast("B")
        size, position = len(view), 0
        self.plaintext_size += size
        # A full chunk is sealed only once a byte beyond it exists: the last chunk must carry the last flag.
        if self._buffered:
            room = self._segment - self._buffered
            if size <= room:
                self._buffer[self._buffered : self._buffered + size] = view
                self._buffered += size
                return size
            self._buffer[self._buffered :] = view[:room]
            self._emit(memoryview(self._buffer), last=False)
            self._buffered, position = 0, room
        while size - position > self._segment:
            self._emit(view[position : position + self._segment], last=False)
            position += self._segment
        rest = size - position
        self._buffer[:rest] = view[position:]
        self._buffered = rest
        return size

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._emit(memoryview(self._buffer)[: self._buffered], last=True)
        self._buffered = 0
        self._closed = True
        self._sink.flush()

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()


class _RawReader:
    """Reads a stream in chunk-sized pieces, telling whether each piece is the last one (one byte of lookahead)."""

    def __init__(self, source: ByteSource, piece: int) -> None:
        self._source, self._piece, self._carry = source, piece, b""

    def next(self) -> tuple[bytes, bool]:
        data = self._carry + read_exact(self._source, self._piece + 1 - len(self._carry))
        if len(data) > self._piece:
            self._carry = data[self._piece :]
            return data[: self._piece], False
        self._carry = b""
        return data, True


def encrypted_chunks(
    source: ByteSource, keyring: KeyWrapper, *, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> Iterator[bytes]:
    """The encrypted object for the plaintext read from ``source``, as header then sealed chunks."""
    sealer = _Sealer(keyring, segment_size)
    yield sealer.header.to_bytes()
    reader = _RawReader(source, segment_size)
    while True:
        plaintext, last = reader.next()
        yield sealer.seal(plaintext, last=last)
        if last:
            return


class _ChunkStream:
    """A read-only file object over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._done = False

    @property
    def closed(self) -> bool:
        return self._done and not self._pending

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def _fill(self) -> bool:
        while not self._pending and not self._done:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                self._done = True
        return bool(self._pending)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while self._fill():
                parts.append(bytes(self._pending))
                self._pending = memoryview(b"")
            return b"".join(parts)
        if not self._fill():
            return b""
        data = bytes(self._pending[:size])
        self._pending = self._pending[size:]
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._done = True
        self._pending = memoryview(b"")


class EncryptingReader(_ChunkStream):
    """A read-only file object yielding the encrypted object for the plaintext in ``source`` (for APIs that pull,
    such as an object store upload)."""

    def __init__(self, source: ByteSource, keyring: KeyWrapper, *, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        super().__init__(encrypted_chunks(source, keyring, segment_size=segment_size))


class _Opener:
    """Authenticates and decrypts consecutive chunks of one object into a reused buffer."""

    def __init__(self, source: ByteSource, keyring: KeyWrapper, header: Header) -> None:
        self._source = source
        self._readinto = getattr(source, "readinto", None)
        self._cipher = _chunk_cipher(unwrap_data_key(header, keyring), header.object_id)
        self._aad = header.fixed
        self._prefix = header.nonce_prefix
        self._piece = header.segment_size + TAG_SIZE
        self._segment = self.segment_size = header.segment_size
        # Buffers of one chunk each, allocated once an object turns out to span more than one chunk: a small
        # object (most evidence) then costs only its own size.
        self._raw = bytearray()
        self._raw_view = memoryview(self._raw)
        self._carried = 0
        self._plain = memoryview(bytearray())
        self._index = 0
        self.done = False

    def _fill(self, start: int) -> int:
        filled = start
        while filled < len(self._raw):
            if self._readinto is not None:
                count = self._readinto(self._raw_view[filled:])
            else:
                data = self._source.read(len(self._raw) - filled)
                count = len(data)
                self._raw_view[filled : filled + count] = data
            if not count:
                break
            filled += count
        return filled

    def _first(self) -> int:
        """Read the first chunk (and one byte more) at its own size; allocate full buffers only if more follows."""
        data = read_exact(self._source, self._piece + 1)
        if len(data) > self._piece:
            self._raw = bytearray(self._piece + 1)
            self._plain = memoryview(bytearray(self._segment))
        else:
            self._raw = bytearray(len(data))
            self._plain = memoryview(bytearray(max(len(data) - TAG_SIZE, 0)))
        self._raw_view = memoryview(self._raw)
        self._raw_view[: len(data)] = data
        return len(data)

    def next(self, out: memoryview | None = None) -> memoryview:
        """The next chunk's plaintext, written into ``out`` when it is large enough (else into a buffer that stays
        valid until the next call); raises ``DecryptionFailed`` and then leaves ``out`` unspecified."""
        filled = self._first() if self._index == 0 else self._fill(self._carried)
        last = filled <= self._piece
        size = filled if last else self._piece
        if size < TAG_SIZE:
            raise DecryptionFailed(f"the object is truncated at chunk {self._index}")
        plain = out[: size - TAG_SIZE] if out is not None and len(out) >= size - TAG_SIZE else None
        if plain is None:
            plain = self._plain[: size - TAG_SIZE]
        try:
            self._cipher.decrypt_into(_nonce(self._prefix, self._index, last), self._raw_view[:size], self._aad, plain)
        except InvalidTag:
            plain[:] = bytes(len(plain))  # what the cipher wrote before the tag check failed is not released
            raise DecryptionFailed(f"chunk {self._index} does not authenticate (changed, moved or truncated)") from None
        if not last:
            self._raw[0] = self._raw[self._piece]
            self._carried = 1
        self._index += 1
        self.done = last
        return plain


def decrypted_chunks(source: ByteSource, keyring: KeyWrapper, *, header: Header | None = None) -> Iterator[bytes]:
    """The plaintext of the encrypted object in ``source``, one authenticated chunk at a time.

    A chunk is released only after its tag verified; a changed, dropped, reordered or foreign chunk, a missing
    end, bytes after the end, or a wrong key raise ``DecryptionFailed`` before any of the failing chunk is given.
    """
    opener = _Opener(source, keyring, header or read_header(source))
    while not opener.done:
        yield bytes(opener.next())


class DecryptingReader(_ChunkStream):
    """A read-only file object giving the plaintext of the encrypted object in ``source`` (see
    :func:`decrypted_chunks`). The header is read and the data key unwrapped on construction, so a wrong key fails
    before the first read. ``close()`` closes ``source``."""

    def __init__(self, source: ClosableByteSource, keyring: KeyWrapper) -> None:
        self._source = source
        try:
            self.header = read_header(source)
            self._opener = _Opener(source, keyring, self.header)
            super().__init__(iter(()))
            self._fill()  # authenticates the first chunk now
        except BaseException:
            source.close()
            raise

    def _fill(self) -> bool:
        if not self._pending and not self._done:
            if self._opener.done:
                self._done = True
            else:
                self._pending = self._opener.next()
        return bool(self._pending)

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` with as many authenticated chunks as fit (fewer, larger reads for the caller)."""
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._pending and not self._done and not self._opener.done:
                room = target[filled:]
                if len(room) >= self._opener.segment_size:  # decrypt straight into the caller's buffer
                    filled += len(self._opener.next(room))
                    continue
            if not self._fill():
                break
            count = min(len(target) - filled, len(self._pending))
            target[filled : filled + count] = self._pending[:count]
            self._pending = self._pending[count:]
            filled += count
        return filled

    def close(self) -> None:
        super().close()
        self._source.close()

    def __enter__(self) -> DecryptingReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def encrypt_bytes(plaintext: bytes, keyring: KeyWrapper, *, segment_size: int = DEFAULT_SEGMENT_SIZE) -> bytes:
    import io

    return b"".join(encrypted_chunks(io.BytesIO(plaintext), keyring, segment_size=segment_size))


def decrypt_bytes(ciphertext: bytes, keyring: KeyWrapper) -> bytes:
    """The whole plaintext, or ``DecryptionFailed`` (never a part of it)."""
    import io

    return b"".join(decrypted_chunks(io.BytesIO(ciphertext), keyring))
