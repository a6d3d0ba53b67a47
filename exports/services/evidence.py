"""Writes for evidence: uploaded files, notebook entries and structured evidence."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from config.errors import StorageFullError, StorageUnavailableError, ValidationFailed
from exports.choices import JSON_EVIDENCE_KINDS, EvidenceKind
from exports.models import Evidence, Execution
from exports.services.rendering import evidence_content
from exports.storage import (
    ArtifactMissing,
    StorageFull,
    StorageUnavailable,
    StoredWrite,
    artifact_storage,
    storage_errors_as_unavailable,
    stored_object_save,
)
from exports.uploads import validate_client_filename
from governance.choices import Classification
from governance.selectors.templates import snapshot_records_terms, template_snapshot_resolution
from governance.services.audit import audit_record, normalize_payload

logger = logging.getLogger(__name__)


def evidence_blob_save(*, name: str, upload: File) -> StoredWrite:
    """Store an upload's bytes under ``name`` (recording the sha256 of the bytes as stored); on a storage fault
    remove whatever part was written and raise 507 ``storage_full`` (no space, quota exhausted) or 503
    ``storage_unavailable`` (docs/errors.md)."""
    storage = artifact_storage()
    try:
        with storage_errors_as_unavailable(f"storing {name}"):
            return stored_object_save(name, upload, storage)
    except (StorageUnavailable, ArtifactMissing) as exc:
        _partial_remove(storage, name)
        logger.warning("upload not stored: %s", exc, extra={"error_code": _fault_code(exc)})
        if isinstance(exc, StorageFull):
            raise StorageFullError() from exc
        raise StorageUnavailableError() from exc


def _fault_code(exc: BaseException) -> str:
    return "storage_full" if isinstance(exc, StorageFull) else "storage_unavailable"


def _partial_remove(storage, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:  # the storage is failing: report the original fault, log this one
        logger.exception("could not remove the partial upload %s", name)


def evidence_storage_path(*, execution: Execution) -> str:
    """A server-generated, namespaced name: nothing from the client reaches the storage path."""
    return f"{execution.team.slug}/{execution.pk}/evidence/{uuid.uuid4().hex}"


def _retention_terms(execution: Execution) -> dict[str, Any]:
    """``retain_until`` and ``retention_mode`` of new evidence: from the template that applies to the execution now
    (the one a new export would pin), else the default days in governance mode (docs/records-lifecycle.md)."""
    resolution = template_snapshot_resolution(
        team_id=execution.team_id, protocol_template_key=execution.protocol_template_key
    )
    terms = snapshot_records_terms(resolution.snapshot)
    days = terms.retention_days or settings.DOSSIER_ARTIFACT_RETENTION_DAYS
    return {"retain_until": timezone.now() + timedelta(days=days), "retention_mode": terms.retention_mode}


def _audit_evidence(evidence: Evidence, actor) -> None:
    audit_record(
        action="evidence.created",
        actor=actor,
        obj=evidence,
        team_id=evidence.execution.team_id,
        payload={"kind": evidence.kind, "sha256": evidence.sha256, "size": evidence.size, "title": evidence.title},
    )


def evidence_file_store(
    *,
    execution: Execution,
    actor,
    upload: File,
    sha256: str,
    title: str = "",
    classification: str = Classification.INTERNAL,
) -> Evidence:
    """Store an uploaded (already hashed) file under a fresh name, then record it.

    The sha256 of the bytes as stored is computed while they are written (docs/storage-tiers-and-fixity.md). The
    blob is written before the row: if the transaction fails the orphan blob is harmless and unreferenced,
    whereas a row pointing at a missing blob would not be.
    """
    filename = validate_client_filename(upload.name or "")
    stored = evidence_blob_save(name=evidence_storage_path(execution=execution), upload=upload)
    with transaction.atomic():
        evidence = Evidence.objects.create(
            execution=execution,
            kind=EvidenceKind.FILE,
            title=title or filename,
            storage_path=stored.name,
            stored_sha256=stored.stored_sha256,
            original_filename=filename,
            content_type=getattr(upload, "content_type", "") or "application/octet-stream",
            size=upload.size,
            sha256=sha256,
            classification=classification,
            created_by=actor,
            **_retention_terms(execution),
        )
        _audit_evidence(evidence, actor)
    return evidence


@transaction.atomic
def notebook_entry_create(
    *, execution: Execution, actor, title: str, body: str, classification: str = Classification.INTERNAL
) -> Evidence:
    encoded = evidence_content(kind=EvidenceKind.NOTEBOOK_ENTRY, body=body, data=None)
    evidence = Evidence.objects.create(
        execution=execution,
        kind=EvidenceKind.NOTEBOOK_ENTRY,
        title=title,
        body=body,
        size=len(encoded),
        sha256=hashlib.sha256(encoded).hexdigest(),
        classification=classification,
        content_type="text/markdown",
        created_by=actor,
        **_retention_terms(execution),
    )
    _audit_evidence(evidence, actor)
    return evidence


@transaction.atomic
def structured_evidence_create(
    *,
    execution: Execution,
    actor,
    kind: str,
    title: str,
    data: Any = None,
    body: str = "",
    classification: str = Classification.INTERNAL,
) -> Evidence:
    """Analytics snapshots and QC metrics carry JSON; remediation reports carry Markdown, JSON or both.

    The recorded size and sha256 are those of the file a bundle carries for it (docs/exports.md, bundle format
    3); evidence recorded before described the canonical JSON ``{"body", "data"}`` instead."""
    if kind not in JSON_EVIDENCE_KINDS:
        raise ValidationFailed(
            f"Evidence of kind '{kind}' is not created here.",
            details={"kind": [f"Not one of {sorted(JSON_EVIDENCE_KINDS)}."]},
        )
    if data is None and not body:
        raise ValidationFailed(
            "Send 'data' (JSON) or 'body' (Markdown).", details={"data": ["This field is required."]}
        )
    if kind != EvidenceKind.REMEDIATION_REPORT and data is None:
        raise ValidationFailed(
            f"Evidence of kind '{kind}' needs 'data'.", details={"data": ["This field is required."]}
        )
    data = normalize_payload({"v": data})["v"] if data is not None else None
    content = evidence_content(kind=kind, body=body, data=data)
    evidence = Evidence.objects.create(
        execution=execution,
        kind=kind,
        title=title,
        body=body,
        data=data,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        classification=classification,
        content_type="application/json",
        created_by=actor,
        **_retention_terms(execution),
    )
    _audit_evidence(evidence, actor)
    return evidence
