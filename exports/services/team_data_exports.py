"""Team data exports as actions (docs/team-data.md): to a file for ``manage.py export_team_data``, or requested
through the API, built by a worker into storage (encrypted like every stored object) and downloaded from there.
Every outcome is audited."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, Gone, NotFound
from exports.choices import TeamDataExportStatus
from exports.crypto import CryptoError, DecryptionFailed
from exports.events import EventType
from exports.models import TeamDataExport
from exports.permissions import TEAM_DATA_EXPORT_ROLES, require_team_role
from exports.services.downloads import StorageUnavailableError
from exports.services.signing_keys import signing_key_active
from exports.services.team_data import (
    TeamBundle,
    TeamDataFailure,
    bag_name_for,
    output_path_for,
    team_data_bundle_build,
    team_get,
)
from exports.storage import (
    BUNDLE_SUFFIXES,
    ArtifactIntegrityError,
    ArtifactMissing,
    StorageUnavailable,
    artifact_open_verified,
    artifact_publish,
    artifact_staged,
    team_data_directory,
)
from governance.models import OutboxMessage, Team
from governance.selectors.teams import team_get_for_user
from governance.services.audit import audit_record
from governance.services.outbox import outbox_enqueue

logger = logging.getLogger(__name__)


def _bundle_payload(bundle: TeamBundle) -> dict:
    result = bundle.result
    return {
        "bag_name": result.name,
        "sha256": result.sha256,
        "size": result.size,
        "key_id": result.key_id,
        "counts": dict(bundle.counts),
    }


def team_data_export_to_file(*, team_slug: str, actor, output: str) -> tuple[str, TeamBundle]:
    """Write the team's bundle to ``output`` (a file, or a directory to put ``<bag>.tar.zst`` in) for an actor
    holding ``compliance``, ``admin`` or ``auditor`` in the team. The file appears complete or not at all."""
    team = team_get(slug=team_slug)
    require_team_role(user=actor, team_id=team.pk, roles=TEAM_DATA_EXPORT_ROLES, action="export the team's data")
    generated_at = timezone.now().replace(microsecond=0)
    path = output_path_for(output, bag_name_for(team, generated_at))
    partial = f"{path}.partial"
    try:
        with open(partial, "wb") as out:
            bundle = team_data_bundle_build(
                team=team, out=out, signing_key=signing_key_active(), generated_at=generated_at,
                actor_name=actor.get_username(),
            )  # fmt: skip
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except StorageUnavailable as exc:
        raise StorageUnavailableError(f"Storage is unavailable: {exc}") from exc
    except CryptoError as exc:
        raise TeamDataFailure(exc.message, code=exc.code) from exc
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    audit_record(
        action=EventType.TEAM_DATA_EXPORTED,
        actor=actor,
        obj=team,
        team_id=team.pk,
        payload={**_bundle_payload(bundle), "destination": "file"},
    )
    return path, bundle


# --- Requested through the API ------------------------------------------------------------------------------------


HANDLER_TEAM_DATA_BUILD = "exports.build_team_data_export"


def _team_for_reader(*, user, slug: str) -> Team:
    team = team_get_for_user(user=user, slug=slug)
    require_team_role(user=user, team_id=team.pk, roles=TEAM_DATA_EXPORT_ROLES, action="export the team's data")
    return team


@transaction.atomic
def team_data_export_request(*, user, slug: str) -> TeamDataExport:
    """Queue a build of the team's bundle (202); the worker runs :func:`team_data_export_run`."""
    team = _team_for_reader(user=user, slug=slug)
    request = TeamDataExport.objects.create(team=team, requested_by=user)
    audit_record(action=EventType.TEAM_DATA_EXPORT_REQUESTED, actor=user, obj=request, team_id=team.pk)
    # Through the outbox: a broker outage delays the build, never the 202 (docs/architecture.md, "The outbox").
    outbox_enqueue(handler=HANDLER_TEAM_DATA_BUILD, payload={"request_id": request.pk})
    return request


def team_data_build_dispatch(message: OutboxMessage) -> None:
    """The outbox handler: send the build task. A redelivery is harmless: a build runs once per request."""
    from exports.tasks import build_team_data_export

    build_team_data_export.delay(message.payload["request_id"])


def team_data_export_get_for_user(*, user, slug: str, request_id: int) -> TeamDataExport:
    team = _team_for_reader(user=user, slug=slug)
    request = TeamDataExport.objects.select_related("team", "requested_by").filter(team=team, pk=request_id).first()
    if request is None:
        raise NotFound(f"No data export {request_id} of team '{slug}'.", code="team_data_export_not_found")
    return request


@transaction.atomic
def _started(request_id: int) -> TeamDataExport | None:
    request = TeamDataExport.objects.select_for_update().select_related("team", "requested_by").get(pk=request_id)
    if request.status != TeamDataExportStatus.QUEUED and not _lost(request):
        return None
    request.status, request.started_at = TeamDataExportStatus.RUNNING, timezone.now()
    request.save(update_fields=["status", "started_at"])
    return request


def _lost(request: TeamDataExport) -> bool:
    """A build still ``running`` past the task's time limit: its worker is gone (the message is delivered again,
    the task acks late), so this delivery starts over."""
    limit = timezone.now() - timedelta(seconds=settings.DOSSIER_PACKAGING_TIME_LIMIT)
    started = request.started_at
    return request.status == TeamDataExportStatus.RUNNING and started is not None and started < limit


def team_data_export_run(*, request_id: int) -> str:
    """Build a requested bundle into storage, once per request: a request no longer queued is left alone, unless
    its build was lost with its worker."""
    request = _started(request_id)
    if request is None:
        return "skipped"
    team = request.team
    generated_at = request.started_at.replace(microsecond=0) if request.started_at else timezone.now()
    try:
        with artifact_staged(prefix=f".staging/team-data-{request.pk}-") as (staged, out):
            bundle = team_data_bundle_build(
                team=team, out=out, signing_key=signing_key_active(), generated_at=generated_at,
                actor_name=request.requested_by.get_username(),
            )  # fmt: skip
        name = team_data_directory(team_slug=team.slug, request_id=request.pk) + bundle.result.name
        name += BUNDLE_SUFFIXES[bundle.result.compression]
        artifact_publish(staged, name)
    except (TeamDataFailure, StorageUnavailable, CryptoError) as exc:
        code = getattr(exc, "code", "storage_unavailable")
        _finish_failed(request, code=code, message=str(exc))
        return "failed"
    except Exception as exc:
        _finish_failed(request, code="internal_error", message=f"{type(exc).__name__}: {exc}")
        raise
    _finish_done(request, bundle, storage_path=name)
    return "done"


@transaction.atomic
def _finish_done(request: TeamDataExport, bundle: TeamBundle, *, storage_path: str) -> None:
    result = bundle.result
    request.status, request.finished_at, request.storage_path = TeamDataExportStatus.DONE, timezone.now(), storage_path
    request.bag_name, request.compression, request.sha256 = result.name, result.compression, result.sha256
    request.size, request.key_id, request.counts = result.size, result.key_id, dict(bundle.counts)
    request.save()
    audit_record(
        action=EventType.TEAM_DATA_EXPORTED,
        actor=request.requested_by,
        obj=request,
        team_id=request.team_id,
        payload={**_bundle_payload(bundle), "destination": "storage"},
    )


@transaction.atomic
def _finish_failed(request: TeamDataExport, *, code: str, message: str) -> None:
    logger.warning("team data export %s failed (%s): %s", request.pk, code, message[:500])
    request.status, request.finished_at = TeamDataExportStatus.FAILED, timezone.now()
    request.error_code, request.error_message = code, message[:4000]
    request.save(update_fields=["status", "finished_at", "error_code", "error_message"])
    audit_record(
        action=EventType.TEAM_DATA_EXPORT_FAILED,
        actor=request.requested_by,
        obj=request,
        team_id=request.team_id,
        payload={"error_code": code},
    )


# --- Download -------------------------------------------------------------------------------------------------------


@dataclass
class TeamDataDownload:
    request: TeamDataExport
    handle: BinaryIO


def team_data_export_download_open(*, request: TeamDataExport, user) -> TeamDataDownload:
    """The finished bundle, sha256-checked before a byte goes out: 409 ``team_data_export_not_ready`` while it is
    being built (or failed), 410 ``team_data_export_erased`` once the team's content was erased."""
    if request.status == TeamDataExportStatus.ERASED:
        raise Gone("This data export was erased with the team's content.", code="team_data_export_erased")
    if request.status != TeamDataExportStatus.DONE:
        raise Conflict(
            f"This data export is {request.status}; nothing to download.",
            code="team_data_export_not_ready",
            details={"status": request.status, "error_code": request.error_code or None},
        )
    try:
        handle = artifact_open_verified(request.storage_path, sha256=request.sha256)
    except ArtifactMissing:
        raise NotFound("The bundle is missing from storage.", code="artifact_not_found") from None
    except (ArtifactIntegrityError, DecryptionFailed):
        raise Conflict(
            "The stored bundle does not match its recorded checksum; it was not sent.",
            code="artifact_integrity_failed",
            details={"expected_sha256": request.sha256},
        ) from None
    except StorageUnavailable:
        raise StorageUnavailableError() from None
    try:
        audit_record(
            action=EventType.TEAM_DATA_DOWNLOADED,
            actor=user,
            obj=request,
            team_id=request.team_id,
            payload={"sha256": request.sha256, "size": request.size},
        )
    except BaseException:
        handle.close()
        raise
    return TeamDataDownload(request=request, handle=handle)
