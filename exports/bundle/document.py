"""export.json (validated against export.schema.json) and the in-toto statement, plus their canonical bytes."""

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from textpolicy.utc import utc_iso

from .errors import BundleError
from .keys import KEY_ALGORITHM
from .tagfiles import TAGMANIFEST_TXT

EXPORT_JSON = "export.json"
NARRATIVE_PATH = "data/narrative.md"
# The human-readable rendition (PDF/A-3b) of bundle format 4 on: a payload file rendered from the others' digests.
RENDITION_PATH = "data/dossier.pdf"
# Bags declaring this Bundle-Format-Version or a later one must carry the rendition.
RENDITION_FORMAT_VERSION = 4
SIGNATURE_FILE = "signatures/tagmanifest-sha512.txt.sig"
ATTESTATION_FILE = "signatures/attestation.dsse.json"
EXPORT_FORMAT = "dossier-export-bundle/1"
ENGINE_SECTIONS = frozenset({"format", "bundle", "files", "signing"})

DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:dossier:attestation:bundle:1"


@cache
def export_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("export.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(export_schema())
    return cls(export_schema(), format_checker=cls.FORMAT_CHECKER)


def export_document_errors(document: object) -> list[str]:
    """Schema violations as 'json/pointer: message' strings, in a stable order."""
    errors = sorted(_validator().iter_errors(document), key=lambda error: list(map(str, error.absolute_path)))
    return [f"/{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors]


def build_export_document(
    *,
    bag_name: str,
    created_at: datetime,
    oxum: str,
    export: Mapping[str, Any],
    files: Sequence[tuple[str, int, str]],
    key_id: str,
) -> dict[str, Any]:
    clash = ENGINE_SECTIONS & set(export)
    if clash:
        raise BundleError("invalid_export_metadata", f"export metadata must not set {sorted(clash)}")
    document = {
        "format": EXPORT_FORMAT,
        "bundle": {"name": bag_name, "created_at": utc_iso(created_at), "payload_oxum": oxum},
        "export": dict(export),
        "files": [{"path": path, "size": size, "sha512": sha512} for path, size, sha512 in files],
        "signing": {
            "algorithm": KEY_ALGORITHM,
            "key_id": key_id,
            "signature": SIGNATURE_FILE,
            "attestation": ATTESTATION_FILE,
        },
    }
    errors = export_document_errors(document)
    if errors:
        raise BundleError("export_document_invalid", "; ".join(errors), path=EXPORT_JSON)
    return document


def statement_subjects(
    tag_manifest: bytes,
    *,
    narrative_sha512: str,
    narrative_sha256: str,
    rendition: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The attestation's subjects: the tag manifest (which pins every other digest) and the narrative, the
    document people actually read, each with sha256 (what most in-toto tooling expects) and sha512; plus the
    rendition ``data/dossier.pdf`` when the bundle has one (``rendition`` = its (sha512, sha256)), so that paper
    and bytes verify against each other."""
    subjects = [
        {"name": NARRATIVE_PATH, "digest": {"sha256": narrative_sha256, "sha512": narrative_sha512}},
        {
            "name": TAGMANIFEST_TXT,
            "digest": {
                "sha256": hashlib.sha256(tag_manifest).hexdigest(),
                "sha512": hashlib.sha512(tag_manifest).hexdigest(),
            },
        },
    ]
    if rendition is not None:
        sha512, sha256 = rendition
        subjects.insert(0, {"name": RENDITION_PATH, "digest": {"sha256": sha256, "sha512": sha512}})
    return subjects


def build_statement(
    *, bag_name: str, created_at: datetime, oxum: str, subjects: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {"bag": bag_name, "createdAt": utc_iso(created_at), "payloadOxum": oxum},
    }


def document_bytes(document: Mapping[str, Any]) -> bytes:
    """The one serialisation we write, so that a re-serialised parse must give back the same bytes."""
    try:
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BundleError("invalid_export_metadata", f"not JSON-serialisable: {exc}") from exc
    return (text + "\n").encode("utf-8")


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
