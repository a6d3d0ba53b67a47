"""Build a bundle in one streaming pass: read each payload file once, hash it and archive it chunk by chunk."""

import hashlib
import os
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from .archive import CHUNK_SIZE, Compression, HashingWriter, TarWriter, compressed_writer
from .document import (
    ATTESTATION_FILE,
    DSSE_PAYLOAD_TYPE,
    EXPORT_JSON,
    NARRATIVE_PATH,
    RENDITION_PATH,
    SIGNATURE_FILE,
    build_export_document,
    build_statement,
    document_bytes,
    statement_bytes,
    statement_subjects,
)
from .errors import BundleError
from .keys import Signer, dsse_sign
from .paths import tree_order, unicode_key, validate_bag_name, validate_payload_path
from .tagfiles import (
    BAG_INFO_TXT,
    BAGIT_DECLARATION,
    BAGIT_TXT,
    COMPUTED_BAG_INFO_LABELS,
    MANIFEST_TXT,
    TAGMANIFEST_TXT,
    payload_oxum,
    render_manifest,
    render_tag_fields,
)

NARRATIVE = NARRATIVE_PATH.removeprefix("data/")


@dataclass(frozen=True)
class PayloadFile:
    """One file under ``data/``. ``open`` is called once, when the file's turn comes, and the stream is closed
    right after; ``size`` must be exact because it goes into the tar header before the first byte is read."""

    path: str
    size: int
    open: Callable[[], BinaryIO] = field(repr=False)

    @classmethod
    def from_path(cls, path: str, source: str | os.PathLike[str]) -> "PayloadFile":
        location = Path(source)
        # Unbuffered: our chunks are far larger than any buffer, which would only add a copy.
        return cls(path=path, size=location.stat().st_size, open=lambda: open(location, "rb", buffering=0))

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> "PayloadFile":
        return cls(path=path, size=len(data), open=lambda: BytesIO(data))


@dataclass(frozen=True)
class DerivedPayloadFile:
    """A payload file made from the digests of all the others: ``render`` receives ``manifest-sha512.txt`` as it
    would read without this file (one ``<sha512>  data/<path>`` line per other payload file, in tree order) and
    returns the file's bytes. It is rendered once every other payload file has been hashed, and written after
    them, followed by ``bag-info.txt`` (whose Payload-Oxum counts it) and ``bagit.txt``. The bundle's
    rendition, which embeds that manifest, is the one such file (docs/exports.md, "The rendition")."""

    path: str
    render: Callable[[bytes], bytes] = field(repr=False)


@dataclass(frozen=True)
class BundleSpec:
    """Everything that determines the archive's bytes: the same spec gives the same archive.

    ``export_metadata`` receives ``{"data/<path>": sha512 hex}`` once the payload has been hashed and returns
    the ``export`` object of export.json; it must be deterministic for the bundle to be reproducible.
    """

    name: str
    created_at: datetime
    bag_info: Sequence[tuple[str, str]]
    payload: Sequence[PayloadFile]
    export_metadata: Callable[[Mapping[str, str]], Mapping[str, Any]] = field(repr=False)
    signer: Signer = field(repr=False)
    compression: Compression = "zstd"
    derived: DerivedPayloadFile | None = None


@dataclass(frozen=True)
class BundleResult:
    name: str
    compression: Compression
    sha256: str  # of the whole compressed archive, as written to ``out``
    size: int
    payload_oxum: str
    key_id: str
    manifest: Mapping[str, str]  # "data/<path>" -> sha512 hex
    tag_manifest: Mapping[str, str]  # tag file name -> sha512 hex
    narrative_sha256: str
    rendition_sha256: str = ""  # of data/dossier.pdf, when the bundle has one
    tag_manifest_bytes: bytes = b""  # tagmanifest-sha512.txt as written: what a trusted timestamp covers


def build_bundle(spec: BundleSpec, out: BinaryIO, *, threads: int | None = None) -> BundleResult:
    """Write the compressed bundle to ``out`` and describe it.

    ``out`` only needs ``write``; on error it holds a partial archive, so write to a temporary name and
    publish on success. ``threads`` sets zstd workers (default: CPU count); it never changes the output.
    Raises ``BundleError`` for an invalid spec or a payload file whose size differs from the declared one.
    """
    created_at, payload = _checked(spec)
    sizes = {f"data/{item.path}": item.size for item in payload}
    sink = HashingWriter(out)
    with compressed_writer(sink, spec.compression, threads=threads) as stream:
        tar = _BagWriter(TarWriter(stream, mtime=int(created_at.timestamp())), spec.name)
        if spec.derived is None:
            # Tree order puts bag-info.txt and bagit.txt before data/ and every file that depends on payload
            # digests (export.json, manifests, signatures) after it: that is what makes a single pass possible.
            head = _head_files(spec, created_at, payload_oxum(list(sizes.values())))
            _add_all(tar, head)
            digests = _write_payload(tar, payload)
        else:
            # A derived file depends on every other payload digest, and bag-info.txt on its size: both follow
            # the payload. Verifiers and bagit-python accept members in any order.
            digests = _write_payload(tar, payload)
            sizes[f"data/{spec.derived.path}"] = _write_derived(tar, spec.derived, digests)
            head = _head_files(spec, created_at, payload_oxum(list(sizes.values())))
            _add_all(tar, head)
        oxum = payload_oxum(list(sizes.values()))
        sealed = _seal(spec, created_at, oxum, sizes, digests, head)
        _add_all(tar, sealed.files)
        tar.close()
    return BundleResult(
        name=spec.name,
        compression=spec.compression,
        sha256=sink.hexdigest(),
        size=sink.size,
        payload_oxum=oxum,
        key_id=spec.signer.key_id,
        manifest={path: sha512 for path, (sha512, _) in digests.items()},
        tag_manifest=sealed.tag_manifest,
        narrative_sha256=digests[NARRATIVE_PATH][1],
        rendition_sha256=digests[RENDITION_PATH][1] if RENDITION_PATH in digests else "",
        tag_manifest_bytes=sealed.files[TAGMANIFEST_TXT],
    )


def _head_files(spec: BundleSpec, created_at: datetime, oxum: str) -> dict[str, bytes]:
    bag_info = [("Bagging-Date", created_at.date().isoformat()), ("Payload-Oxum", oxum), *spec.bag_info]
    return {BAG_INFO_TXT: render_tag_fields(bag_info), BAGIT_TXT: render_tag_fields(BAGIT_DECLARATION)}


def _add_all(tar: "_BagWriter", files: Mapping[str, bytes]) -> None:
    for path in sorted(files, key=tree_order):
        tar.add_bytes(path, files[path])


def _write_derived(tar: "_BagWriter", derived: DerivedPayloadFile, digests: dict[str, tuple[str, str]]) -> int:
    """Render the derived file from the other payload files' manifest, archive it, record its digests (sha512,
    and sha256 for the attestation) in ``digests``; return its size."""
    others = render_manifest((path, sha512) for path, (sha512, _) in digests.items())
    data = derived.render(others)
    bag_path = f"data/{derived.path}"
    tar.add_bytes(bag_path, data)
    digests[bag_path] = (hashlib.sha512(data).hexdigest(), hashlib.sha256(data).hexdigest())
    return len(data)


def _checked(spec: BundleSpec) -> tuple[datetime, list[PayloadFile]]:
    validate_bag_name(spec.name)
    if spec.created_at.tzinfo is None or spec.created_at.utcoffset() is None:
        raise BundleError("invalid_created_at", "created_at must be timezone-aware")
    created_at = spec.created_at.astimezone(UTC)
    if created_at.timestamp() < 0:
        raise BundleError("invalid_created_at", "created_at must not precede 1970")
    reserved = COMPUTED_BAG_INFO_LABELS & {label for label, _ in spec.bag_info}
    if reserved:
        raise BundleError("invalid_bag_info", f"{sorted(reserved)} are computed by the bundle engine")
    derived_path = spec.derived.path if spec.derived is not None else None
    # The derived file's path is checked like the others (valid, no collision); its bytes come later.
    placeholder = [PayloadFile.from_bytes(derived_path, b"")] if derived_path is not None else []
    checked = _checked_payload([*spec.payload, *placeholder])
    return created_at, [item for item in checked if item.path != derived_path]


def _checked_payload(payload: Sequence[PayloadFile]) -> list[PayloadFile]:
    files: dict[str, str] = {}
    directories: set[str] = set()
    for item in payload:
        validate_payload_path(item.path)
        if not isinstance(item.size, int) or item.size < 0:
            raise BundleError("invalid_payload", f"size must be a non-negative int, not {item.size!r}", path=item.path)
        key = unicode_key(item.path)
        if key in files:
            raise BundleError("duplicate_payload_path", f"collides with {files[key]!r}", path=item.path)
        files[key] = item.path
        parts = key.split("/")
        directories.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    clash = sorted(directories & files.keys())
    if clash:
        raise BundleError("duplicate_payload_path", "used both as a file and as a directory", path=files[clash[0]])
    if NARRATIVE not in files.values():
        raise BundleError("invalid_payload", f"the payload must contain {NARRATIVE}", path=NARRATIVE_PATH)
    return sorted(payload, key=lambda item: tree_order(item.path))


class _BagWriter:
    """Tar entries under the bag's top directory, with each parent directory emitted just before its first
    child, which in tree order is exactly where a sorted listing would have it."""

    def __init__(self, tar: TarWriter, root: str) -> None:
        self._tar = tar
        self._root = root
        self._directories: set[str] = set()
        self._directory(root)

    def add_bytes(self, path: str, data: bytes) -> None:
        self._parents(path)
        self._tar.add_bytes(f"{self._root}/{path}", data)

    def add_stream(self, path: str, size: int, chunks: Iterator[memoryview]) -> None:
        self._parents(path)
        self._tar.add_stream(f"{self._root}/{path}", size, chunks)

    def close(self) -> None:
        self._tar.close()

    def _parents(self, path: str) -> None:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            self._directory(f"{self._root}/{'/'.join(parts[:depth])}")

    def _directory(self, name: str) -> None:
        if name not in self._directories:
            self._directories.add(name)
            self._tar.add_directory(name)


def _write_payload(tar: _BagWriter, payload: Sequence[PayloadFile]) -> dict[str, tuple[str, str]]:
    """Archive every payload file; return ``{"data/<path>": (sha512, sha256)}`` (sha256 only for the narrative,
    which the attestation names with both digests)."""
    digests = {}
    # Hashing runs on its own thread while this one feeds the compressor (both release the GIL), so the
    # digests cost almost no wall time on top of compression. Two buffers for the whole run keep memory flat.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bundle-hash") as hashing:
        reader = _ChunkReader(hashing)
        for item in payload:
            bag_path = f"data/{item.path}"
            hashers = [hashlib.sha512()] + ([hashlib.sha256()] if bag_path == NARRATIVE_PATH else [])
            # closing(): a file longer than declared stops the generator early; release it now, not at GC time.
            with closing(reader.chunks(item, hashers)) as chunks:
                tar.add_stream(bag_path, item.size, chunks)
            digests[bag_path] = (hashers[0].hexdigest(), hashers[-1].hexdigest() if len(hashers) > 1 else "")
    return digests


class _ChunkReader:
    """Reads payload files into two alternating buffers and hashes each chunk on the hashing thread while the
    caller archives it. A buffer is refilled only once its hash has finished; the caller (tar writer and
    compressor) has copied or consumed a chunk before it asks for the next one."""

    def __init__(self, hashing: ThreadPoolExecutor) -> None:
        self._hashing = hashing
        self._buffers = (memoryview(bytearray(CHUNK_SIZE)), memoryview(bytearray(CHUNK_SIZE)))
        self._turn = 0

    def chunks(self, item: PayloadFile, hashers: list[Any]) -> Generator[memoryview]:
        pending: Future[None] | None = None
        try:
            with item.open() as stream:
                _advise_sequential(stream)
                while chunk := self._read(stream):
                    if pending is not None:
                        pending.result()  # the previous chunk's buffer is the one read next
                    pending = self._hashing.submit(_update, hashers, chunk)
                    yield chunk
        finally:
            if pending is not None:
                pending.result()  # digests are complete (or the error surfaces) before the caller reads them

    def _read(self, stream: BinaryIO) -> memoryview | None:
        view = self._buffers[self._turn]
        self._turn ^= 1
        readinto = getattr(stream, "readinto", None)
        if readinto is not None:
            count = readinto(view)
            return view[:count] if count else None
        data = stream.read(len(view))
        return memoryview(data) if data else None


def _update(hashers: list[Any], chunk: memoryview) -> None:
    for hasher in hashers:
        hasher.update(chunk)


def _advise_sequential(stream: BinaryIO) -> None:
    """Ask the kernel for aggressive read-ahead on a real file; anything else (S3, in-memory) is left alone."""
    # No fileno (io.UnsupportedOperation), not a regular file, or no posix_fadvise on this platform.
    with suppress(AttributeError, OSError, ValueError):
        os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)


@dataclass(frozen=True)
class _Sealed:
    files: dict[str, bytes]  # every file written after data/, by bag path
    tag_manifest: dict[str, str]


def _seal(
    spec: BundleSpec,
    created_at: datetime,
    oxum: str,
    sizes: Mapping[str, int],
    digests: Mapping[str, tuple[str, str]],
    head: Mapping[str, bytes],
) -> _Sealed:
    """Everything that depends on the payload digests: export.json, the manifests and both signatures.
    ``head`` holds the tag files already written (bagit.txt, bag-info.txt) for the tag manifest."""
    manifest = {path: sha512 for path, (sha512, _) in digests.items()}
    document = build_export_document(
        bag_name=spec.name,
        created_at=created_at,
        oxum=oxum,
        export=spec.export_metadata(dict(manifest)),
        files=[(path, sizes[path], manifest[path]) for path in sorted(sizes, key=tree_order)],
        key_id=spec.signer.key_id,
    )
    tag_files = {**head, EXPORT_JSON: document_bytes(document), MANIFEST_TXT: render_manifest(manifest.items())}
    tag_manifest = {name: hashlib.sha512(data).hexdigest() for name, data in tag_files.items()}
    tag_manifest_bytes = render_manifest(tag_manifest.items())
    narrative_sha512, narrative_sha256 = digests[NARRATIVE_PATH]
    statement = build_statement(
        bag_name=spec.name,
        created_at=created_at,
        oxum=oxum,
        subjects=statement_subjects(
            tag_manifest_bytes,
            narrative_sha512=narrative_sha512,
            narrative_sha256=narrative_sha256,
            rendition=digests.get(RENDITION_PATH),
        ),
    )
    envelope = dsse_sign(DSSE_PAYLOAD_TYPE, statement_bytes(statement), spec.signer)
    files = {
        EXPORT_JSON: tag_files[EXPORT_JSON],
        MANIFEST_TXT: tag_files[MANIFEST_TXT],
        TAGMANIFEST_TXT: tag_manifest_bytes,
        SIGNATURE_FILE: spec.signer.sign(tag_manifest_bytes),
        ATTESTATION_FILE: document_bytes(envelope),
    }
    return _Sealed(files=files, tag_manifest=tag_manifest)
