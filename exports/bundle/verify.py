"""Check a bundle the way an auditor would, and extract one safely.

The archive is read once, as a stream: payload files are hashed chunk by chunk and forgotten, only the small
tag files are kept. Every check runs after the scan, so the verifier accepts members in any order and reports
every problem it finds rather than stopping at the first.
"""

import gzip
import hashlib
import json
import os
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from textpolicy import inert_line

from .archive import CHUNK_SIZE, HashingReader, open_source, open_tar_stream
from .document import (
    ATTESTATION_FILE,
    DSSE_PAYLOAD_TYPE,
    EXPORT_JSON,
    NARRATIVE_PATH,
    PREDICATE_TYPE,
    RENDITION_FORMAT_VERSION,
    RENDITION_PATH,
    SIGNATURE_FILE,
    STATEMENT_TYPE,
    document_bytes,
    export_document_errors,
    statement_subjects,
)
from .errors import BundleError
from .keys import SIGNATURE_SIZE, PublicKeyMaterial, dsse_verify, load_public_key, verify_signature
from .paths import member_path_problem
from .rendition import rendition_problems
from .tagfiles import (
    BAG_INFO_TXT,
    BAGIT_DECLARATION,
    BAGIT_TXT,
    MANIFEST_TXT,
    TAGMANIFEST_TXT,
    parse_manifest,
    parse_payload_oxum,
    parse_tag_fields,
)

MANIFESTED_TAG_FILES = (BAG_INFO_TXT, BAGIT_TXT, EXPORT_JSON, MANIFEST_TXT)
REQUIRED_FILES = (*MANIFESTED_TAG_FILES, TAGMANIFEST_TXT, SIGNATURE_FILE, ATTESTATION_FILE)
# Tag files are read into memory; a bigger one is hashed but not parsed, so a hostile archive cannot make us
# allocate more than this per file.
TAG_FILE_LIMIT = 64 << 20
# The rendition is read into memory for its PDF/A checks; a 100k-event timeline renders to about 30 MB.
RENDITION_LIMIT = 512 << 20
# How much of the narrative's start is kept to name it in the report, and the longest title shown.
_NARRATIVE_HEAD = 4096
_TITLE_LIMIT = 300
# What a corrupt or truncated archive raises; other OSErrors (the source itself failing) propagate.
_ARCHIVE_ERRORS = (tarfile.TarError, zstandard.ZstdError, zlib.error, EOFError, gzip.BadGzipFile)


@dataclass(frozen=True)
class Problem:
    code: str
    path: str | None  # relative to the bag directory; None when it concerns the whole archive
    message: str


@dataclass(frozen=True)
class VerificationReport:
    bag_name: str | None  # shown inert (docs/text-policy.md): it comes from the archive
    archive_sha256: str
    archive_size: int
    key_id: str | None
    problems: tuple[Problem, ...]
    narrative_title: str | None = None  # the first line of data/narrative.md, shown inert, for the reader

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _File:
    size: int
    sha512: str
    sha256: str
    content: bytes | None  # tag files only


@dataclass
class _Audit:
    keys: dict[str, Any]
    root: str | None = None
    files: dict[str, _File] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    key_id: str | None = None
    bag_info: dict[str, str] | None = None  # parsed once, when well formed
    manifest: dict[str, str] | None = None
    narrative_head: bytes = b""

    def report(self, code: str, path: str | None, message: str) -> None:
        # Names and text read from the archive may carry control or format characters: a problem shows them as
        # visible escapes, so printing it cannot drive a terminal or reorder what the auditor reads.
        self.problems.append(Problem(code, inert_line(path) if path else path, inert_line(message)))

    def report_error(self, error: BundleError) -> None:
        self.report(error.code, error.path, error.message)

    def content(self, path: str) -> bytes | None:
        found = self.files.get(path)
        return found.content if found else None


def verify_bundle(
    source: str | os.PathLike[str] | BinaryIO, public_keys: Mapping[str, PublicKeyMaterial]
) -> VerificationReport:
    """Verify a bundle file or stream against the public keys, by key id. Problems found in the bundle are
    reported, never raised; only an unreadable ``source`` (OSError) or unusable key material raises."""
    audit = _Audit(keys={key_id: load_public_key(material) for key_id, material in public_keys.items()})
    with open_source(source) as file:
        raw = HashingReader(file)
        _scan(raw, audit)
        raw.drain()
    if not any(problem.code == "archive_unreadable" for problem in audit.problems):
        _check_contents(audit)
    return VerificationReport(
        bag_name=inert_line(audit.root) if audit.root is not None else None,
        archive_sha256=raw.hexdigest(),
        archive_size=raw.size,
        key_id=inert_line(audit.key_id) if audit.key_id is not None else None,
        problems=tuple(audit.problems),
        narrative_title=_narrative_title(audit.narrative_head),
    )


def _quoted(name: str | None) -> str:
    """A name from the archive for a message: quoted and inert."""
    return "None" if name is None else f"'{inert_line(name)}'"


def _narrative_title(head: bytes) -> str | None:
    first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").removeprefix("# ").strip()
    return inert_line(first_line[:_TITLE_LIMIT]) if first_line else None


def extract_bundle(source: str | os.PathLike[str] | BinaryIO, destination: str | os.PathLike[str]) -> Path:
    """Extract into ``destination`` (created if needed, must be empty) and return the bag directory.

    Only plain files and directories under one top-level directory are accepted; anything else raises
    ``BundleError`` before it touches the disk, leaving what was extracted so far (use a fresh temporary
    directory). Files get mode 0644 and directories 0755 whatever the archive says. Digests are not checked
    here: that is ``verify_bundle``'s job.
    """
    target_root = Path(destination)
    target_root.mkdir(parents=True, exist_ok=True)
    if any(target_root.iterdir()):
        raise BundleError("destination_not_empty", f"{target_root} is not empty")
    with open_source(source) as file:
        try:
            with open_tar_stream(file) as tar:
                root = _extract_members(tar, target_root)
        except _ARCHIVE_ERRORS as exc:
            raise BundleError("archive_unreadable", f"{type(exc).__name__}: {exc}") from exc
    if root is None:
        raise BundleError("archive_unreadable", "the archive is empty")
    return target_root / root


def read_bundle_file(source: str | os.PathLike[str] | BinaryIO, path: str, *, limit: int) -> bytes | None:
    """The bytes of one file of the bag (``path`` relative to the bag directory, e.g. ``data/dossier.pdf``), read
    from the archive as a stream; None when the bag has no such file. Digests are not checked here: read from an
    archive whose own digest was verified. Raises ``BundleError`` (``archive_unreadable``, ``unsafe_member``,
    ``file_too_large`` past ``limit`` bytes)."""
    with open_source(source) as file:
        try:
            with open_tar_stream(file) as tar:
                root = None
                for member in tar:
                    root = _checked_member(member, root)
                    if member.isdir() or member.name.partition("/")[2] != path:
                        continue
                    if member.size > limit:
                        raise BundleError("file_too_large", f"larger than {limit} bytes", path=path)
                    return b"".join(_member_chunks(tar, member))
        except _ARCHIVE_ERRORS as exc:
            raise BundleError("archive_unreadable", f"{type(exc).__name__}: {exc}") from exc
    return None


def _extract_members(tar: tarfile.TarFile, target_root: Path) -> str | None:
    root = None
    for member in tar:
        root = _checked_member(member, root)
        target = target_root / member.name
        if member.isdir():
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            continue
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(target, "xb") as out:  # "x": a duplicate member must not overwrite an earlier one
            os.fchmod(out.fileno(), 0o644)
            for chunk in _member_chunks(tar, member):
                out.write(chunk)
        os.utime(target, (member.mtime, member.mtime))
    return root


def _checked_member(member: tarfile.TarInfo, root: str | None) -> str:
    """Return the member's top-level directory, or raise if the member is unsafe or outside the bag."""
    problem = member_path_problem(member.name)
    if problem is None and member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
        problem = "is a link, device or other special file"
    if problem is None and "/" not in member.name and not member.isdir():
        problem = "is a file outside the bag directory"
    top = member.name.split("/", 1)[0]
    if problem is None and root is not None and top != root:
        problem = f"is outside the bag directory {_quoted(root)}"
    if problem:
        raise BundleError("unsafe_member", f"archive member {_quoted(member.name)} {problem}", path=member.name)
    return top


def _member_chunks(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    stream = tar.extractfile(member)
    assert stream is not None  # regular files always have a body
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def _scan(raw: HashingReader, audit: _Audit) -> None:
    try:
        with open_tar_stream(raw) as tar:
            for member in tar:
                _record(audit, tar, member)
            if _has_trailing_data(tar.fileobj):  # type: ignore[arg-type]
                audit.report("archive_trailing_data", None, "non-zero data after the end of the tar archive")
    except BundleError as exc:
        audit.report_error(exc)
    except _ARCHIVE_ERRORS as exc:
        audit.report("archive_unreadable", None, f"{type(exc).__name__}: {exc}")


def _has_trailing_data(stream: BinaryIO) -> bool:
    found = False
    while chunk := stream.read(CHUNK_SIZE):
        found = found or bool(chunk.strip(b"\0"))
    return found


def _kept_in_memory(path: str, size: int) -> bool:
    """Tag files are parsed and the rendition is checked, so their bytes are kept (up to their limits)."""
    if path == RENDITION_PATH:
        return size <= RENDITION_LIMIT
    return not path.startswith("data/") and size <= TAG_FILE_LIMIT


def _record(audit: _Audit, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    try:
        audit.root = _checked_member(member, audit.root)
    except BundleError as exc:
        audit.report_error(exc)
        return
    path = member.name.partition("/")[2]
    if not path:
        return
    if path in audit.files or path in audit.directories:
        audit.report("duplicate_member", path, "appears more than once in the archive")
        return
    if member.isdir():
        audit.directories.add(path)
        return
    audit.files[path] = _read_member(audit, tar, member, path)


def _read_member(audit: _Audit, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> _File:
    keep = _kept_in_memory(path, member.size)
    # sha256 only for the narrative and the rendition: the attestation names them with both digests.
    hashers = [hashlib.sha512()] + ([hashlib.sha256()] if path in (NARRATIVE_PATH, RENDITION_PATH) else [])
    kept = []
    for chunk in _member_chunks(tar, member):
        for hasher in hashers:
            hasher.update(chunk)
        if keep:
            kept.append(chunk)
        if path == NARRATIVE_PATH and len(audit.narrative_head) < _NARRATIVE_HEAD:
            audit.narrative_head += chunk[: _NARRATIVE_HEAD - len(audit.narrative_head)]
    sha256 = hashers[-1].hexdigest() if len(hashers) > 1 else ""
    return _File(member.size, hashers[0].hexdigest(), sha256, b"".join(kept) if keep else None)


def _check_contents(audit: _Audit) -> None:
    _check_layout(audit)
    for check in (_check_declaration, _check_bag_info, _check_manifest, _check_tag_manifest):
        try:
            check(audit)
        except BundleError as exc:
            audit.report_error(exc)
    document = _check_export_document(audit)
    _check_signatures(audit, document)
    _check_rendition(audit)


def _check_rendition(audit: _Audit) -> None:
    """Bundles of format 4 on carry ``data/dossier.pdf``; when there is one, it must be PDF/A-3b with its fonts,
    an OutputIntent and the bag's manifest embedded (``rendition.py``)."""
    rendition = audit.files.get(RENDITION_PATH)
    if rendition is None:
        declared = (audit.bag_info or {}).get("Bundle-Format-Version", "")
        if declared.isdigit() and int(declared) >= RENDITION_FORMAT_VERSION:
            audit.report("rendition_missing", RENDITION_PATH, f"format {declared} bundles carry the rendition")
        return
    if rendition.content is None:
        audit.report("rendition_too_large", RENDITION_PATH, f"larger than {RENDITION_LIMIT} bytes")
        return
    for code, message in rendition_problems(rendition.content, bag_manifest=audit.content(MANIFEST_TXT)):
        audit.report(code, RENDITION_PATH, message)


def _check_layout(audit: _Audit) -> None:
    if audit.root is None:
        audit.report("missing_file", None, "the archive holds no bag directory")
        return
    for path in REQUIRED_FILES:
        if path not in audit.files:
            audit.report("missing_file", path, "required file is missing")
        elif audit.files[path].content is None:
            audit.report("tag_file_too_large", path, f"larger than {TAG_FILE_LIMIT} bytes")
    for path in sorted(audit.files):
        if not path.startswith("data/") and path not in REQUIRED_FILES:
            audit.report("unexpected_file", path, "not part of the bundle format and covered by no manifest")


def _check_declaration(audit: _Audit) -> None:
    content = audit.content(BAGIT_TXT)
    if content is not None and tuple(parse_tag_fields(content, BAGIT_TXT)) != BAGIT_DECLARATION:
        audit.report("bagit_declaration_invalid", BAGIT_TXT, "must declare BagIt-Version 1.0 and UTF-8, in that order")


def _check_bag_info(audit: _Audit) -> None:
    content = audit.content(BAG_INFO_TXT)
    if content is None:
        return
    fields = audit.bag_info = dict(parse_tag_fields(content, BAG_INFO_TXT))
    try:
        date.fromisoformat(fields.get("Bagging-Date", ""))
    except ValueError:
        audit.report("bag_info_invalid", BAG_INFO_TXT, "Bagging-Date must be a YYYY-MM-DD date")
    oxum = parse_payload_oxum(fields.get("Payload-Oxum", ""))
    payload = [found.size for path, found in audit.files.items() if path.startswith("data/")]
    if oxum is None:
        audit.report("bag_info_invalid", BAG_INFO_TXT, "Payload-Oxum must be '<bytes>.<files>'")
    elif oxum != (sum(payload), len(payload)):
        audit.report(
            "payload_oxum_mismatch",
            BAG_INFO_TXT,
            f"Payload-Oxum says {oxum[0]} bytes in {oxum[1]} files, the payload has {sum(payload)} in {len(payload)}",
        )


def _check_manifest(audit: _Audit) -> None:
    content = audit.content(MANIFEST_TXT)
    if content is None:
        return
    entries = audit.manifest = parse_manifest(content, MANIFEST_TXT)
    for path, digest in entries.items():
        if not path.startswith("data/"):
            audit.report("manifest_invalid", MANIFEST_TXT, f"lists {_quoted(path)}, which is not under data/")
        elif path not in audit.files:
            audit.report("missing_payload", path, f"listed in {MANIFEST_TXT} but absent")
        elif audit.files[path].sha512 != digest:
            audit.report("digest_mismatch", path, f"sha512 differs from {MANIFEST_TXT}")
    for path in sorted(audit.files):
        if path.startswith("data/") and path not in entries:
            audit.report("unlisted_payload", path, f"payload file not listed in {MANIFEST_TXT}")


def _check_tag_manifest(audit: _Audit) -> None:
    content = audit.content(TAGMANIFEST_TXT)
    if content is None:
        return
    entries = parse_manifest(content, TAGMANIFEST_TXT)
    for path, digest in entries.items():
        if path not in MANIFESTED_TAG_FILES:
            message = f"lists {_quoted(path)}, which is not a manifested tag file"
            audit.report("manifest_invalid", TAGMANIFEST_TXT, message)
        elif path in audit.files and audit.files[path].sha512 != digest:
            audit.report("digest_mismatch", path, f"sha512 differs from {TAGMANIFEST_TXT}")
    for path in MANIFESTED_TAG_FILES:
        if path not in entries:
            audit.report("tag_file_unlisted", path, f"not covered by {TAGMANIFEST_TXT}")


def _check_export_document(audit: _Audit) -> dict[str, Any] | None:
    """Return export.json when it is valid (even if inconsistent), so the signature check can use its key id."""
    content = audit.content(EXPORT_JSON)
    if content is None:
        return None
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        audit.report("export_document_invalid", EXPORT_JSON, f"not UTF-8 JSON: {exc}")
        return None
    errors = export_document_errors(document)
    if errors:
        audit.report("export_document_invalid", EXPORT_JSON, "; ".join(errors))
        return None
    for message in _inconsistencies(audit, document):
        audit.report("export_document_inconsistent", EXPORT_JSON, message)
    return dict(document)


def _inconsistencies(audit: _Audit, document: Mapping[str, Any]) -> Iterator[str]:
    if document["bundle"]["name"] != audit.root:
        yield f"bundle.name is {_quoted(document['bundle']['name'])} but the bag directory is {_quoted(audit.root)}"
    if audit.bag_info is not None:
        oxum = audit.bag_info.get("Payload-Oxum")
        if document["bundle"]["payload_oxum"] != oxum:
            yield f"bundle.payload_oxum {document['bundle']['payload_oxum']!r} differs from bag-info.txt ({oxum!r})"
    listed = {entry["path"]: entry for entry in document["files"]}
    if len(listed) != len(document["files"]):
        yield "files lists a path twice"
    entries = audit.manifest or {}
    for path in sorted(listed.keys() | entries.keys()):
        entry, found = listed.get(path), audit.files.get(path)
        if entry is None:
            yield f"{path} is in {MANIFEST_TXT} but not in files"
        elif entries.get(path) != entry["sha512"]:
            yield f"{path}: sha512 differs from {MANIFEST_TXT}"
        elif found is not None and found.size != entry["size"]:
            yield f"{path}: size {entry['size']} differs from the archived file ({found.size})"


def _check_signatures(audit: _Audit, document: Mapping[str, Any] | None) -> None:
    envelope = _parse_envelope(audit)
    if document is not None:
        audit.key_id = document["signing"]["key_id"]
    elif envelope is not None:
        # export.json is unusable; the envelope still says which key the signer claims to be.
        audit.key_id = _claimed_key_id(envelope)
    _check_detached_signature(audit)
    if envelope is not None:
        _check_attestation(audit, envelope)


def _claimed_key_id(envelope: Mapping[str, Any]) -> str | None:
    signatures = envelope.get("signatures")
    first = signatures[0] if isinstance(signatures, list) and signatures else None
    keyid = first.get("keyid") if isinstance(first, dict) else None
    return keyid if isinstance(keyid, str) else None


def _check_detached_signature(audit: _Audit) -> None:
    signature, tag_manifest = audit.content(SIGNATURE_FILE), audit.content(TAGMANIFEST_TXT)
    if signature is None or tag_manifest is None:
        return
    key = audit.keys.get(audit.key_id) if audit.key_id else None
    if key is None:
        audit.report("unknown_signing_key", SIGNATURE_FILE, f"no public key for key id {_quoted(audit.key_id)}")
    elif len(signature) != SIGNATURE_SIZE or not verify_signature(key, signature, tag_manifest):
        audit.report("signature_invalid", SIGNATURE_FILE, f"does not verify {TAGMANIFEST_TXT} with key {audit.key_id}")


def _parse_envelope(audit: _Audit) -> dict[str, Any] | None:
    content = audit.content(ATTESTATION_FILE)
    if content is None:
        return None
    try:
        envelope = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        audit.report("attestation_invalid", ATTESTATION_FILE, f"not UTF-8 JSON: {exc}")
        return None
    if not isinstance(envelope, dict):
        audit.report("attestation_invalid", ATTESTATION_FILE, "not a JSON object")
        return None
    # Nothing signs the envelope's own bytes, so only its one canonical form is accepted: otherwise an
    # edit (whitespace, key order, escapes) could go unnoticed.
    if document_bytes(envelope) != content:
        audit.report("attestation_invalid", ATTESTATION_FILE, "not in canonical form (sorted keys, 2-space indent)")
    return envelope


def _check_attestation(audit: _Audit, envelope: Mapping[str, Any]) -> None:
    try:
        if envelope.get("payloadType") != DSSE_PAYLOAD_TYPE:
            raise BundleError("attestation_invalid", f"payloadType must be {DSSE_PAYLOAD_TYPE}")
        payload, signed_by = dsse_verify(envelope, audit.keys)
        if audit.key_id not in signed_by:
            raise BundleError("attestation_key_mismatch", f"not signed by the bundle's key {_quoted(audit.key_id)}")
        statement = json.loads(payload.decode("utf-8"))
    except BundleError as exc:
        audit.report(exc.code, ATTESTATION_FILE, exc.message)
        return
    except (UnicodeDecodeError, ValueError) as exc:
        audit.report("attestation_invalid", ATTESTATION_FILE, f"statement is not UTF-8 JSON: {exc}")
        return
    for message in _statement_problems(audit, statement):
        audit.report("attestation_subject_mismatch", ATTESTATION_FILE, message)


def _statement_problems(audit: _Audit, statement: Any) -> Iterator[str]:
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        yield f"the payload is not an in-toto Statement ({STATEMENT_TYPE})"
        return
    if statement.get("predicateType") != PREDICATE_TYPE:
        yield f"predicateType must be {PREDICATE_TYPE}"
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict) or predicate.get("bag") != audit.root:
        yield f"predicate.bag does not name the bag directory {_quoted(audit.root)}"
    tag_manifest, narrative = audit.content(TAGMANIFEST_TXT), audit.files.get(NARRATIVE_PATH)
    if tag_manifest is None or narrative is None:
        yield f"cannot check subjects without {TAGMANIFEST_TXT} and {NARRATIVE_PATH}"
        return
    rendition = audit.files.get(RENDITION_PATH)
    expected = statement_subjects(
        tag_manifest,
        narrative_sha512=narrative.sha512,
        narrative_sha256=narrative.sha256,
        rendition=(rendition.sha512, rendition.sha256) if rendition is not None else None,
    )
    claimed = statement.get("subject")
    if claimed != expected:
        names = sorted(subject["name"] for subject in expected if subject not in (claimed or []))
        yield f"subjects do not match the bundle's {', '.join(names) or 'subject list'}"
