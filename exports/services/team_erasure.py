"""Erasing a team's content while keeping what the law requires (docs/team-data.md, "Erasure").

Removed: the stored files of evidence uploads, bundles and team data exports (everything under the team's storage
prefix), event payloads, narratives and export notes, notebook bodies and structured evidence, the titles and file
names people typed. Every export moves to ``erased`` through ``export_transition``. Kept, untouched: executions,
exports and evidence as rows (ids, digests, sizes, times), signature records, approval history, escalations, legal
holds, retention tombstones and the audit trail, whose payloads hold digests instead of text
(docs/audit-trail.md), so ``verify_audit_chain`` still passes.

Refusals, checked in this order for the dry run and the real run alike: the actor is not an admin of the team
(403, exit 2); an active legal hold covers the team or one of its exports (409 ``legal_hold_active``, exit 3); a
``compliance``-mode retention has not ended (409 ``retention_locked``, exit 2); an export is being packaged (409
``packaging_in_progress``, exit 1); a team data export is being built (409 ``team_data_export_in_progress``,
exit 1). A run that finds nothing left to remove changes nothing and records nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from config.errors import Conflict
from exports.choices import (
    JSON_EVIDENCE_KINDS,
    EvidenceKind,
    ExportStatus,
    RetentionMode,
    StorageTier,
    TeamDataExportStatus,
)
from exports.events import EventType
from exports.models import (
    Evidence,
    Execution,
    ExecutionEvent,
    ExportArtifact,
    ExportAttachment,
    NarrativeExport,
    TeamDataExport,
)
from exports.permissions import TEAM_ERASURE_ROLES, require_team_role
from exports.selectors.holds import held_export_ids, team_hold_active
from exports.selectors.team_data import REMOVED_EXPORT_STATUSES, team_data_sections
from exports.services.downloads import StorageUnavailableError
from exports.services.lifecycle import lifecycle_batch
from exports.services.team_data import AUDIT_KIND, team_get
from exports.services.transitions import export_transition
from exports.storage import (
    STAGING_PREFIX,
    TIER_PREFIX,
    StorageUnavailable,
    artifact_storage,
    storage_errors_as_unavailable,
)
from governance.models import AuditEvent, Team
from governance.services.audit import audit_record

logger = logging.getLogger(__name__)

# Statuses the packaging worker owns: an erasure waits until it is done.
IN_FLIGHT_STATUSES = frozenset({ExportStatus.QUEUED, ExportStatus.PACKAGING})
# Timeline entries the erasure writes itself: their payloads hold no content and stay.
ERASURE_EVENT_TYPES = (EventType.EXPORT_ERASED,)


@dataclass
class ErasureReport:
    team: Team
    dry_run: bool
    removed: dict[str, int] = field(default_factory=dict)
    retained: dict[str, int] = field(default_factory=dict)

    @property
    def nothing_to_remove(self) -> bool:
        return not any(self.removed.values())


# --- What would go ------------------------------------------------------------------------------------------------


def _in_team(model, team_id: int):
    return model.objects.for_team(team_id)


def _content_querysets(team_id: int) -> dict[str, QuerySet]:
    """Per kind, the team's rows that still hold content to remove."""
    evidence = _in_team(Evidence, team_id)
    exports = _in_team(NarrativeExport, team_id)
    return {
        "uploads": evidence.filter(kind=EvidenceKind.FILE).exclude(storage_path=""),
        "notebook_bodies": evidence.filter(kind=EvidenceKind.NOTEBOOK_ENTRY).exclude(body=""),
        "structured_evidence": evidence.filter(kind__in=JSON_EVIDENCE_KINDS).filter(
            ~Q(body="") | Q(data__isnull=False)
        ),
        "event_payloads": _in_team(ExecutionEvent, team_id)
        .exclude(payload={})
        .exclude(event_type__in=ERASURE_EVENT_TYPES),
        "narratives": exports.filter(~Q(narrative_markdown="") | ~Q(notes="") | ~Q(evidence_manifest=[])),
        "bundles": _in_team(ExportArtifact, team_id).exclude(export__status__in=REMOVED_EXPORT_STATUSES),
        "exports": exports.exclude(status=ExportStatus.ERASED),
        "team_data_exports": TeamDataExport.objects.filter(team_id=team_id).exclude(status=TeamDataExportStatus.ERASED),
        "titles": _labelled(team_id),
    }


def _labelled(team_id: int):
    """Executions whose title, or whose evidence or attachments' titles and file names, are still there."""
    evidence = _in_team(Evidence, team_id).filter(~Q(title="") | ~Q(original_filename="")).values("execution_id")
    attachments = _in_team(ExportAttachment, team_id).exclude(title="").values("export__execution_id")
    return _in_team(Execution, team_id).filter(~Q(title="") | Q(pk__in=evidence) | Q(pk__in=attachments))


def _retained_counts(team_id: int) -> dict[str, int]:
    counts = {section.kind: section.count(team_id) for section in team_data_sections() if section.retained}
    counts[AUDIT_KIND] = AuditEvent.objects.filter(team_id=team_id).count()
    return counts


def _team_prefix(team: Team) -> str:
    return f"{team.slug}/"


def _stored_names(storage: Storage, directory: str) -> Iterator[str]:
    """Every stored object under ``directory`` (recursive, as the storage lists it)."""
    try:
        directories, files = storage.listdir(directory)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{directory}/{name}"
    for child in directories:
        yield from _stored_names(storage, f"{directory}/{child}")


def _staged_names(storage: Storage, team: Team) -> list[str]:
    export_ids = set(_in_team(NarrativeExport, team.pk).values_list("pk", flat=True))
    request_ids = set(TeamDataExport.objects.filter(team=team).values_list("pk", flat=True))
    prefixes = tuple(f"{pk}-v" for pk in export_ids) + tuple(f"team-data-{pk}-" for pk in request_ids)
    if not prefixes:
        return []
    staging = STAGING_PREFIX.rstrip("/")
    return [name for name in _stored_names(storage, staging) if name[len(staging) + 1 :].startswith(prefixes)]


def _team_directories(team: Team) -> list[str]:
    """The team's prefix, and the same prefix in every colder filesystem tier (``.tiers/<tier>/<team>``;
    docs/storage-tiers-and-fixity.md). On S3 a tier is a storage class of the same key, so the prefix covers it."""
    prefix = _team_prefix(team).rstrip("/")
    return [prefix, *(f"{TIER_PREFIX}{tier}/{prefix}" for tier in StorageTier.values if tier != StorageTier.HOT)]


def team_stored_objects(team: Team) -> list[str]:
    """The team's objects in storage: everything under its prefix in every tier, and staged bytes of its exports."""
    storage = artifact_storage()
    with storage_errors_as_unavailable("listing the team's stored objects"):
        names = [name for directory in _team_directories(team) for name in _stored_names(storage, directory)]
        return [*names, *_staged_names(storage, team)]


def _report(team: Team, *, dry_run: bool) -> tuple[ErasureReport, list[str]]:
    stored = team_stored_objects(team)
    removed = {kind: queryset.count() for kind, queryset in _content_querysets(team.pk).items()}
    removed["stored_objects"] = len(stored)
    return ErasureReport(team=team, dry_run=dry_run, removed=removed, retained=_retained_counts(team.pk)), stored


# --- Refusals -----------------------------------------------------------------------------------------------------


def _refusal_check(team: Team) -> None:
    export_ids = list(_in_team(NarrativeExport, team.pk).values_list("pk", flat=True))
    held = sorted(held_export_ids(export_ids))
    if team_hold_active(team.pk) or held:
        raise Conflict(
            "A legal hold covers this team's records; nothing can be erased until it is released.",
            code="legal_hold_active",
            details={"team": team.slug, "held_export_ids": held[:100]},
        )
    now = timezone.now()
    locked = Q(retention_mode=RetentionMode.COMPLIANCE, retain_until__gt=now)
    evidence = _in_team(Evidence, team.pk).filter(locked, purged_at__isnull=True).exclude(storage_path="")
    artifacts = _in_team(ExportArtifact, team.pk).filter(locked, expired_at__isnull=True)
    artifacts = artifacts.exclude(export__status=ExportStatus.ERASED)
    if evidence.exists() or artifacts.exists():
        latest = max(filter(None, [_latest(evidence), _latest(artifacts)]))
        raise Conflict(
            "A compliance-mode retention has not ended; nobody may erase these records before it does.",
            code="retention_locked",
            details={"team": team.slug, "retain_until": latest.isoformat()},
        )
    busy = sorted(_in_team(NarrativeExport, team.pk).filter(status__in=IN_FLIGHT_STATUSES).values_list("pk", flat=True))
    if busy:
        raise Conflict(
            "Exports of this team are being packaged; erase once packaging has finished.",
            code="packaging_in_progress",
            details={"export_ids": busy[:100]},
        )
    building = sorted(_team_data_exports_in_flight(team.pk).values_list("pk", flat=True))
    if building:
        raise Conflict(
            "A data export of this team is being built; erase once it has finished.",
            code="team_data_export_in_progress",
            details={"request_ids": building[:100]},
        )


def _team_data_exports_in_flight(team_id: int) -> QuerySet[TeamDataExport]:
    """Requests a worker may still be building (within the task's time limit); older ones were lost with their
    worker and are erased like the rest."""
    since = timezone.now() - timedelta(seconds=settings.DOSSIER_PACKAGING_TIME_LIMIT)
    in_flight = (TeamDataExportStatus.QUEUED, TeamDataExportStatus.RUNNING)
    return TeamDataExport.objects.filter(team_id=team_id, status__in=in_flight, created_at__gt=since)


def _latest(queryset):
    return queryset.order_by("-retain_until").values_list("retain_until", flat=True).first()


# --- The erasure --------------------------------------------------------------------------------------------------


def team_erase(*, slug: str, actor, reason: str, dry_run: bool) -> ErasureReport:
    """Report (``dry_run``) or erase the team's content; see the module docstring for refusals. The database
    changes commit first, then the stored objects are deleted: a run interrupted in between is finished by the
    next one, which finds the objects still under the team's prefix."""
    team = team_get(slug=slug)
    require_team_role(user=actor, team_id=team.pk, roles=TEAM_ERASURE_ROLES, action="erase the team's content")
    _refusal_check(team)
    try:
        report, stored = _report(team, dry_run=dry_run)
    except StorageUnavailable as exc:
        raise StorageUnavailableError(f"Storage could not be listed: {exc}") from exc
    if dry_run:
        audit_record(
            action=EventType.TEAM_ERASURE_PLANNED,
            actor=actor,
            obj=team,
            team_id=team.pk,
            payload={"reason": reason, "removed": report.removed, "retained": report.retained},
        )
        return report
    if report.nothing_to_remove:
        return report
    _erase_records(team=team, actor=actor, reason=reason, report=report)
    try:
        _delete_stored(team, stored)
    except StorageUnavailable as exc:
        raise StorageUnavailableError(
            f"The team's records were erased but storage failed while deleting its files ({exc}); run the erasure "
            "again to finish.",
        ) from exc
    return report


@transaction.atomic
def _erase_records(*, team: Team, actor, reason: str, report: ErasureReport) -> None:
    Team.objects.select_for_update().get(pk=team.pk)  # one erasure of a team at a time
    _refusal_check(team)  # again, under the lock: a hold placed meanwhile wins
    exports = _in_team(NarrativeExport, team.pk).select_for_update(of=("self",)).select_related("execution")
    with lifecycle_batch():
        for export in exports.exclude(status=ExportStatus.ERASED).order_by("pk").iterator(chunk_size=500):
            export_transition(
                export=export,
                to=ExportStatus.ERASED,
                actor=actor,
                event_type=EventType.EXPORT_ERASED,
                payload={"previous_status": export.status, "narrative_digest": export.narrative_digest},
            )
    _blank_content(team.pk)
    audit_record(
        action=EventType.TEAM_ERASED,
        actor=actor,
        obj=team,
        team_id=team.pk,
        payload={"reason": reason, "removed": report.removed, "retained": report.retained},
    )


def _blank_content(team_id: int) -> None:
    evidence = _in_team(Evidence, team_id)
    evidence.filter(kind=EvidenceKind.FILE).exclude(storage_path="").update(storage_path="")
    evidence.update(body="", data=None, title="", original_filename="")
    _in_team(ExecutionEvent, team_id).exclude(payload={}).exclude(event_type__in=ERASURE_EVENT_TYPES).update(payload={})
    _in_team(NarrativeExport, team_id).update(narrative_markdown="", notes="", evidence_manifest=[])
    _in_team(ExportAttachment, team_id).update(title="")
    _in_team(Execution, team_id).update(title="")
    TeamDataExport.objects.filter(team_id=team_id).exclude(status=TeamDataExportStatus.ERASED).update(
        storage_path="", status=TeamDataExportStatus.ERASED
    )


def _delete_stored(team: Team, names: list[str]) -> None:
    storage = artifact_storage()
    with storage_errors_as_unavailable("deleting the team's stored objects"):
        for name in names:
            storage.delete(name)
        if isinstance(storage, FileSystemStorage):
            _remove_empty_directories(storage.path(team.slug))


def _remove_empty_directories(root: str) -> None:
    """The team's directory tree on a filesystem storage, once its files are gone (deepest first)."""
    for directory, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        if not os.listdir(directory):
            os.rmdir(directory)
