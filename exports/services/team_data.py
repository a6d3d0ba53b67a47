"""A team's whole record as one signed BagIt bundle (docs/team-data.md).

The bundle has the format of a dossier's (docs/exports.md, "The bundle"): the same engine (``exports/bundle``)
builds it, with the same manifests, Ed25519 signature and DSSE attestation, and ``verify_export``, bagit-python,
``sha512sum -c`` and ``openssl pkeyutl -verify`` check it the same way. Its ``export.json`` carries
``{"kind": "team_data", ...}`` instead of one export's metadata.

Building runs in two steps so that memory stays flat whatever the team's size:
1. In one REPEATABLE READ snapshot, every section streams from a server-side cursor into its own NDJSON file in a
   scratch directory, counted as it is written; the stored files (evidence uploads, published bundles) are
   listed with their recorded size and sha256.
2. The bundle engine archives the NDJSON files, then each stored file, read once through storage (decrypted when
   storage encrypts) and checked against its recorded sha256 as it streams.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson
from django.conf import settings
from django.db import connection, transaction

from config.errors import Conflict, NotFound
from exports.bundle import BundleError, BundleResult, BundleSpec, Compression, PayloadFile, build_bundle
from exports.formats import bundle_file_name
from exports.models import SigningKey
from exports.selectors.team_data import StoredFile, bundle_files, evidence_files, team_data_sections
from exports.services.signing_keys import signer_for
from exports.storage import ArtifactMissing, storage_errors_as_unavailable, storage_open_stream
from governance.models import Team
from governance.selectors.audit_trail import AuditTrailFilters, audit_events_filtered, audit_rows, ndjson_lines
from governance.services.timestamps import tsa_certificates_pem
from textpolicy import inert_line
from textpolicy.utc import utc_iso

TEAM_DATA_FORMAT = "dossier-team-data/1"
AUDIT_KIND = "audit_events"
STORED_FILES_INDEX = "stored_files.ndjson"
STORED_FILE_DIRECTORIES = {"evidence_files": "evidence", "bundles": "bundles"}
# The engine's verdicts on a stored file that is not what its record says.
_MISMATCH_CODES = frozenset({"payload_digest_mismatch", "payload_size_mismatch"})
_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


class TeamDataFailure(Conflict):
    """The bundle could not be built from what is stored (a file missing or not matching its recorded digest)."""

    code = "team_data_failed"


@dataclass
class TeamDataContent:
    """What the scratch directory holds after the snapshot: NDJSON files by kind, their row counts, and the
    stored files to archive after them."""

    directory: Path
    counts: dict[str, int] = field(default_factory=dict)
    files: list[StoredFile] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)
    stored_bytes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TeamBundle:
    result: BundleResult
    counts: Mapping[str, int]
    generated_at: datetime


def bag_name_for(team: Team, generated_at: datetime) -> str:
    return f"team-data-{team.slug}-{generated_at.strftime('%Y%m%dT%H%M%SZ')}"[:100]


def _json_line(row: Mapping[str, Any]) -> bytes:
    return orjson.dumps(row, option=_JSON_OPTIONS, default=str) + b"\n"


def _spool_section(path: Path, chunks: Iterator[bytes]) -> int:
    count = 0
    with open(path, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            count += chunk.count(b"\n")
    return count


def _spool_audit(path: Path, team_id: int) -> int:
    """The team's audit rows with their chain fields, as ``GET /api/governance/audit-events?format=ndjson`` gives
    them, so ``docs/verify_audit_segment.py`` checks each row's hash."""
    count = 0
    rows = audit_rows(audit_events_filtered(filters=AuditTrailFilters(), team_id=team_id))
    with open(path, "wb") as out:
        for line in ndjson_lines(rows):
            out.write(line)
            count += 1
    return count


def bundle_path_for(item: StoredFile) -> str:
    directory = STORED_FILE_DIRECTORIES[item.kind]
    return f"{directory}/{item.execution_id}/{item.record_id}-{bundle_file_name(item.name)}"


def _spool_stored_files(content: TeamDataContent, team_id: int) -> None:
    index = content.directory / STORED_FILES_INDEX
    with open(index, "wb") as out:
        for source in (evidence_files(team_id), bundle_files(team_id)):
            for item in source:
                content.files.append(item)
                content.counts[item.kind] = content.counts.get(item.kind, 0) + 1
                content.stored_bytes[item.kind] = content.stored_bytes.get(item.kind, 0) + item.size
                out.write(
                    _json_line(
                        {
                            "kind": item.kind,
                            "record_id": item.record_id,
                            "execution_id": item.execution_id,
                            "path": f"data/{bundle_path_for(item)}",
                            "size": item.size,
                            "sha256": item.sha256,
                        }
                    )
                )
    for kind in STORED_FILE_DIRECTORIES:
        content.counts.setdefault(kind, 0)
        content.stored_bytes.setdefault(kind, 0)


@contextmanager
def _snapshot() -> Iterator[None]:
    """One consistent view of the team for every section (PostgreSQL REPEATABLE READ when we open the transaction;
    inside a caller's transaction, that transaction's view)."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        with transaction.atomic():
            yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def team_data_spool(*, team: Team, directory: Path) -> TeamDataContent:
    content = TeamDataContent(directory=directory)
    with _snapshot():
        for section in team_data_sections():
            content.counts[section.kind] = _spool_section(directory / section.file_name, section.json_lines(team.pk))
            if section.retained:
                content.retained.append(section.kind)
        content.counts[AUDIT_KIND] = _spool_audit(directory / f"{AUDIT_KIND}.ndjson", team.pk)
        content.retained.append(AUDIT_KIND)
        _spool_stored_files(content, team.pk)
    return content


class _StoredReader:
    """A stored file read once for the bundle (decrypted when storage encrypts). Its size and sha256 are checked
    against the record by the bundle engine in the same pass (``PayloadFile.sha256``)."""

    def __init__(self, item: StoredFile) -> None:
        self._item = item
        try:
            self._file = storage_open_stream(item.storage_path)
        except ArtifactMissing:
            raise TeamDataFailure(
                f"{item.kind} {item.record_id} is missing from storage.",
                code="stored_file_missing",
                details={"kind": item.kind, "id": item.record_id},
            ) from None
        self._readinto = getattr(self._file, "readinto", None)

    def __enter__(self) -> _StoredReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()

    def readinto(self, buffer) -> int:
        with storage_errors_as_unavailable(f"reading {self._item.kind} {self._item.record_id}"):
            if self._readinto is not None:
                return int(self._readinto(buffer))
            data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _stored_payload(item: StoredFile) -> PayloadFile:
    return PayloadFile(
        path=bundle_path_for(item),
        size=item.size,
        open=lambda: cast(BinaryIO, _StoredReader(item)),
        sha256=item.sha256,
    )


def _manifest(team: Team, content: TeamDataContent, generated_at: datetime, actor_name: str) -> dict[str, Any]:
    return {
        "format": TEAM_DATA_FORMAT,
        "team": {"id": team.pk, "slug": team.slug, "name": team.name},
        "generated_at": utc_iso(generated_at),
        "generated_by": actor_name,
        "counts": dict(sorted(content.counts.items())),
        "bytes": dict(sorted(content.stored_bytes.items())),
        "records": {kind: f"data/{kind}.ndjson" for kind in content.counts if kind not in STORED_FILE_DIRECTORIES},
        "stored_files": {
            "index": f"data/{STORED_FILES_INDEX}",
            **{kind: f"data/{directory}/" for kind, directory in STORED_FILE_DIRECTORIES.items()},
        },
        "retained_on_erasure": sorted(content.retained),
    }


def _summary(team: Team, manifest: Mapping[str, Any]) -> str:
    lines = [
        f"# Team data export: {inert_line(team.name)} ({team.slug})",
        "",
        f"Generated at {manifest['generated_at']} by {inert_line(manifest['generated_by'] or 'the system')}.",
        "Every record of the team, one NDJSON file per kind, with the stored files they describe",
        "(docs/team-data.md). `manifest.json` counts each kind.",
        "",
        "| kind | count |",
        "| --- | --- |",
        *(f"| {kind} | {count} |" for kind, count in manifest["counts"].items()),
        "",
    ]
    return "\n".join(lines)


def team_data_bundle_build(
    *, team: Team, out: BinaryIO, signing_key: SigningKey, generated_at: datetime, actor_name: str = ""
) -> TeamBundle:
    """Write the team's bundle to ``out``; raise ``TeamDataFailure`` when a stored file is missing or altered."""
    scratch = Path(tempfile.mkdtemp(prefix="dossier-team-data-", dir=settings.FILE_UPLOAD_TEMP_DIR))
    try:
        content = team_data_spool(team=team, directory=scratch)
        manifest = _manifest(team, content, generated_at, actor_name)
        records = sorted(path.name for path in scratch.iterdir())
        payload = [
            PayloadFile.from_bytes("narrative.md", _summary(team, manifest).encode()),
            PayloadFile.from_bytes("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"),
            *(PayloadFile.from_path(name, scratch / name) for name in records),
            *(_stored_payload(item) for item in content.files),
            *_tsa_chain(),
        ]
        spec = BundleSpec(
            name=bag_name_for(team, generated_at),
            created_at=generated_at,
            bag_info=_bag_info(team, generated_at),
            payload=payload,
            export_metadata=lambda _digests: {
                "kind": "team_data",
                "team": {"id": team.pk, "slug": team.slug},
                "generated_at": manifest["generated_at"],
                "counts": manifest["counts"],
            },
            signer=signer_for(signing_key),
            compression=cast(Compression, settings.DOSSIER_ARTIFACT_COMPRESSION),
        )
        try:
            result = build_bundle(spec, out)
        except BundleError as exc:
            code = "stored_file_integrity_failed" if exc.code in _MISMATCH_CODES else exc.code
            raise TeamDataFailure(str(exc), code=code, details={"path": exc.path}) from exc
        return TeamBundle(result=result, counts=manifest["counts"], generated_at=generated_at)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _tsa_chain() -> list[PayloadFile]:
    """The TSA certificates the team's timestamp tokens chain to, for ``openssl ts -verify -CAfile``."""
    chain = tsa_certificates_pem()
    return [PayloadFile.from_bytes("tsa-certificates.pem", chain)] if chain else []


def _bag_info(team: Team, generated_at: datetime) -> list[tuple[str, str]]:
    return [
        ("Source-Organization", settings.DOSSIER_BUNDLE_SOURCE_ORGANIZATION),
        ("External-Identifier", f"team-data:{team.slug}:{generated_at.strftime('%Y%m%dT%H%M%SZ')}"),
        ("Bag-Group-Identifier", team.slug),
        ("Bundle-Kind", "team-data"),
        ("Team", team.slug),
    ]


def team_get(*, slug: str) -> Team:
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise NotFound(f"No team '{slug}'.", code="team_not_found")
    return team


def output_path_for(output: str, bag_name: str) -> str:
    """``--output``: a file to write, or an existing directory to write ``<bag>.tar.zst`` into."""
    if os.path.isdir(output):
        suffix = ".tar.gz" if settings.DOSSIER_ARTIFACT_COMPRESSION == "gzip" else ".tar.zst"
        return os.path.join(output, bag_name + suffix)
    return output
