"""Deterministic tar writing and compressed, hashed archive streams (both directions).

Reproducibility rests on this module: headers carry only what we set (fixed modes, owner 0, empty owner
names, one mtime), PAX extended headers appear only for long or non-ASCII names and are themselves
deterministic, and neither zstd frames (no checksum, no content size, no dictionary id) nor gzip members
(mtime 0, no file name) carry anything that varies between runs.
"""

import gzip
import hashlib
import os
import tarfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, Literal, Protocol

import zstandard

from .errors import BundleError

Compression = Literal["zstd", "gzip"]
ZSTD_LEVEL = 3
GZIP_LEVEL = 6
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
# Big enough that per-call overhead vanishes and hashlib/zstd release the GIL for long stretches.
CHUNK_SIZE = 2 << 20
# The most handed to the zstd compressor per call. Its multi-threaded mode buffers whatever one call brings
# until a job is full, so small feeds keep its memory at a few job sizes whatever the file sizes are.
COMPRESSOR_FEED = 512 << 10
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
FILE_MODE = 0o644
DIR_MODE = 0o755


class Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


class HashingWriter:
    """Pass-through writer that keeps the sha256 and size of everything written: the archive digest comes
    for free as the compressed bytes go out."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self._sha256.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def compressor_threads(threads: int | None) -> int:
    # zstd output is identical for every worker count >= 1 but differs from single-threaded mode (0),
    # so we never use 0: the same bundle comes out on a laptop and on a 64-core worker.
    return max(1, threads if threads is not None else (os.cpu_count() or 1))


@contextmanager
def compressed_writer(
    sink: HashingWriter, compression: Compression, *, threads: int | None = None
) -> Iterator[Writable]:
    if compression == "zstd":
        compressor = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL,
            threads=compressor_threads(threads),
            write_checksum=False,
            write_content_size=False,
            write_dict_id=False,
        )
        with compressor.stream_writer(sink, closefd=False, write_size=1 << 20) as writer:  # type: ignore[arg-type]
            yield _MeteredFeed(writer)
    elif compression == "gzip":
        with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=sink, mtime=0) as writer:
            yield writer
    else:
        raise BundleError("invalid_compression", f"compression must be 'zstd' or 'gzip', not {compression!r}")


class _MeteredFeed:
    """Hands the compressor at most ``COMPRESSOR_FEED`` bytes per call; slicing a memoryview copies nothing."""

    def __init__(self, writer: Writable) -> None:
        self._writer = writer

    def write(self, data: bytes | memoryview, /) -> int:
        view = memoryview(data)
        for start in range(0, len(view), COMPRESSOR_FEED):
            self._writer.write(view[start : start + COMPRESSOR_FEED])
        return len(view)


class TarWriter:
    """Writes tar entries with headers built by ``TarInfo.tobuf`` and file bodies streamed straight through."""

    def __init__(self, out: Writable, *, mtime: int) -> None:
        self._out = out
        self._mtime = mtime
        self._offset = 0

    def add_directory(self, name: str) -> None:
        self._write(self._header(name, tarfile.DIRTYPE, 0, DIR_MODE))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(self._header(name, tarfile.REGTYPE, len(data), FILE_MODE))
        self._write(data)
        self._pad(len(data))

    def add_stream(self, name: str, size: int, chunks: Iterable[bytes | memoryview]) -> None:
        """Write a file body of exactly ``size`` bytes from ``chunks``; the header must come first, so the
        size is promised up front and checked at the end."""
        self._write(self._header(name, tarfile.REGTYPE, size, FILE_MODE))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                break
            self._write(chunk)
        if written != size:
            found = "more" if written > size else str(written)
            raise BundleError("payload_size_mismatch", f"declared {size} bytes, found {found}", path=name)
        self._pad(size)

    def close(self) -> None:
        """End-of-archive marker, then zero-fill to a whole record as GNU tar and tarfile do."""
        self._write(b"\0" * (2 * BLOCK))
        self._write(b"\0" * (-self._offset % RECORD))

    def _header(self, name: str, kind: bytes, size: int, mode: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.mode = mode
        info.mtime = self._mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(b"\0" * (BLOCK - size % BLOCK))

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self._offset += len(data)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader:
    """Read-through wrapper keeping the sha256 and size of the raw (compressed) archive bytes."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK_SIZE):
            pass

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


class _Prefixed:
    """Puts back the bytes we peeked at to recognise the compression format."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if not self._head:
            return self._rest.read(size)
        if size < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data if len(data) == size else data + self._rest.read(size - len(data))


def decompressed_reader(raw: Readable) -> BinaryIO:
    head = raw.read(4)
    source = _Prefixed(head, raw)
    if head.startswith(ZSTD_MAGIC):
        reader = zstandard.ZstdDecompressor()
        return reader.stream_reader(source, read_size=1 << 20, read_across_frames=True, closefd=False)  # type: ignore[arg-type]
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[call-overload]
    raise BundleError("archive_unreadable", "neither a zstd nor a gzip stream")


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads PAX and GNU long-name headers into memory whole; a hostile archive could declare (and a
    zstd bomb could cheaply supply) gigabytes of them. Ours are a few hundred bytes."""

    max_header_size = 1 << 20
    extended_types = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                      tarfile.GNUTYPE_LONGLINK)  # fmt: skip

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in self.extended_types and self.size > self.max_header_size:
            raise tarfile.ReadError(f"extended header of {self.size} bytes")
        return super()._proc_member(archive)  # type: ignore[misc]


def open_tar_stream(raw: Readable) -> tarfile.TarFile:
    """Sequential reading ("r|"): the archive is never seeked, so it can come straight from storage."""
    return tarfile.open(fileobj=decompressed_reader(raw), mode="r|", bufsize=1 << 20, tarinfo=BoundedTarInfo)


@contextmanager
def open_source(source: str | os.PathLike[str] | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            yield file
    else:
        yield source
