"""Serving artifacts: retention and integrity are checked, and the lifecycle recorded, before a byte goes out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, Gone, NotFound, StorageUnavailableError
from exports.bundle import RENDITION_PATH, BundleError, read_bundle_file
from exports.bundle.verify import RENDITION_LIMIT
from exports.crypto import DecryptionFailed
from exports.events import EventType
from exports.models import ExportArtifact, NarrativeExport
from exports.services.clearance import export_clearance_require
from exports.services.lifecycle import export_lifecycle_record
from exports.storage import (
    ArtifactIntegrityError,
    ArtifactMissing,
    DownloadLink,
    LinkExpired,
    LinkInvalid,
    StorageUnavailable,
    artifact_open_verified,
    download_link_sign,
    download_link_unsign,
)


@dataclass
class VerifiedDownload:
    artifact: ExportArtifact
    handle: BinaryIO


def _artifact_of(export: NarrativeExport) -> ExportArtifact:
    artifact = ExportArtifact.objects.select_related("signing_key").filter(export=export).first()
    if artifact is None:
        raise NotFound(f"Export {export.pk} has no packaged artifact.", code="artifact_not_found")
    return artifact


@transaction.atomic
def _integrity_failed(*, artifact: ExportArtifact, actor, error: ArtifactIntegrityError) -> None:
    locked = (
        ExportArtifact.objects.select_for_update(of=("self",)).select_related("export__execution").get(pk=artifact.pk)
    )
    locked.integrity_failed_at = timezone.now()
    locked.save(update_fields=["integrity_failed_at"])
    export_lifecycle_record(
        export=locked.export,
        event_type=EventType.ARTIFACT_INTEGRITY_FAILED,
        actor=actor,
        payload={"artifact_id": locked.pk, "expected_sha256": error.expected, "actual_sha256": error.actual},
    )


@transaction.atomic
def _decryption_failed(*, artifact: ExportArtifact, actor, error: DecryptionFailed) -> None:
    export = NarrativeExport.objects.select_related("execution").get(pk=artifact.export_id)
    export_lifecycle_record(
        export=export,
        event_type=EventType.ARTIFACT_DECRYPTION_FAILED,
        actor=actor,
        payload={"artifact_id": artifact.pk, "sha256": artifact.sha256, "reason": error.message},
    )


def artifact_download_open(*, export: NarrativeExport, actor=None, via: str = "api") -> VerifiedDownload:
    """Open an export's artifact for download after checking the reader's clearance (403
    ``clearance_insufficient``, recorded as ``narrative_export.export_denied``) and that it is there, not purged
    and intact.

        404 ``artifact_not_found`` (no artifact, or its bytes are gone), 410 ``artifact_expired`` (purged by
        ``enforce_retention``; an artifact past ``retain_until`` that a hold covers, or that the next run has not
        purged yet, still downloads), 409 ``artifact_integrity_failed`` (stored bytes do not hash to the recorded
        sha256; recorded every time), 409 ``decryption_failed`` (the stored ciphertext does not open with the keyring:
    wrong or missing key, or changed bytes; recorded every time, nothing sent). Success records
    ``narrative_export.artifact.downloaded``.
    """
    export_clearance_require(export=export, user=actor, action="download" if via == "api" else via)
    artifact = _artifact_of(export)
    if artifact.expired_at is not None:  # set only by enforce_retention, which never purges a held artifact
        raise Gone(
            f"The artifact of export {export.pk} passed its retention window and is no longer available.",
            code="artifact_expired",
            details={"retain_until": artifact.retain_until.isoformat() if artifact.retain_until else None},
        )
    try:
        handle = artifact_open_verified(artifact.storage_path, sha256=artifact.sha256)
    except ArtifactMissing:
        raise NotFound(
            f"The artifact of export {export.pk} is missing from storage.", code="artifact_not_found"
        ) from None
    except ArtifactIntegrityError as error:
        _integrity_failed(artifact=artifact, actor=actor, error=error)
        raise Conflict(
            "The stored artifact does not match its recorded checksum; it was not sent.",
            code="artifact_integrity_failed",
            details={"export_id": export.pk, "expected_sha256": artifact.sha256},
        ) from None
    except DecryptionFailed as error:
        _decryption_failed(artifact=artifact, actor=actor, error=error)
        raise Conflict(
            "The stored artifact could not be decrypted with the keyring; it was not sent.",
            code="decryption_failed",
            details={"export_id": export.pk},
        ) from None
    except StorageUnavailable:
        raise StorageUnavailableError() from None
    try:
        export_lifecycle_record(
            export=export,
            event_type=EventType.ARTIFACT_DOWNLOADED,
            actor=actor,
            payload={"artifact_id": artifact.pk, "sha256": artifact.sha256, "size": artifact.size, "via": via},
        )
    except BaseException:
        handle.close()
        raise
    return VerifiedDownload(artifact=artifact, handle=handle)


def artifact_link_issue(*, export: NarrativeExport, actor) -> tuple[ExportArtifact, DownloadLink]:
    export_clearance_require(export=export, user=actor, action="link")
    artifact = _artifact_of(export)
    if artifact.expired_at is not None:
        raise Gone(f"The artifact of export {export.pk} has expired.", code="artifact_expired")
    return artifact, download_link_sign(artifact_id=artifact.pk, sha256=artifact.sha256, user_id=actor.pk)


def artifact_link_resolve(*, token: str) -> tuple[NarrativeExport, object | None]:
    """The export and the user a signed link was issued to; 410 when it expired, 404 when it is not valid."""
    from django.contrib.auth import get_user_model

    try:
        grant = download_link_unsign(token)
    except LinkExpired:
        raise Gone("This download link has expired; request a new one.", code="download_link_expired") from None
    except LinkInvalid:
        raise NotFound("This download link is not valid.", code="download_link_invalid") from None
    artifact = ExportArtifact.objects.select_related("export__execution__team").filter(pk=grant.artifact_id).first()
    if artifact is None or not artifact.sha256.startswith(grant.sha256_prefix):
        raise NotFound("This download link is not valid.", code="download_link_invalid")
    user = get_user_model().objects.filter(pk=grant.user_id, is_active=True).first() if grant.user_id else None
    if user is None or not NarrativeExport.objects.visible_to(user).filter(pk=artifact.export_id).exists():
        raise NotFound("This download link is not valid.", code="download_link_invalid")
    return artifact.export, user


@dataclass(frozen=True)
class RenditionDownload:
    artifact: ExportArtifact
    content: bytes

    @property
    def filename(self) -> str:
        return f"{self.artifact.bag_name}.pdf"


def artifact_rendition_open(*, export: NarrativeExport, actor=None) -> RenditionDownload:
    """The rendition ``data/dossier.pdf`` alone, read from the verified artifact (docs/exports.md, "The
    rendition"): the same clearance, retention and integrity checks and the same download record as the
    artifact (``via`` ``rendition``). 404 ``rendition_not_found`` for artifacts of formats before the rendition."""
    download = artifact_download_open(export=export, actor=actor, via="rendition")
    try:
        content = read_bundle_file(download.handle, RENDITION_PATH, limit=RENDITION_LIMIT)
    except BundleError as error:
        raise Conflict(
            f"The rendition could not be read from the artifact: {error.message}",
            code="artifact_integrity_failed",
            details={"export_id": export.pk},
        ) from None
    finally:
        download.handle.close()
    if content is None:
        raise NotFound(
            f"The artifact of export {export.pk} (bundle format {download.artifact.format_version}) has no rendition.",
            code="rendition_not_found",
        )
    return RenditionDownload(artifact=download.artifact, content=content)
