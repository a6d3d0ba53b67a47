"""Reads for workflow templates: lists, which snapshot applies to a new export, and drift.

Resolution order for a new export of a team: that team's assignment for the protocol template, then that team's
own assignment, then the platform's default template (``settings.DOSSIER_DEFAULT_TEMPLATE_KEY``). An assignment
names a template; the snapshot used is that of the highest *published* version of the assigned template (its key
inside its owner), so publishing a new version takes effect without re-assigning, and archiving it falls back to
the previous published version. Only the team's own assignments and templates and platform templates are ever
considered, so nothing another team does can change a team's ladder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import F, Prefetch, Q, QuerySet

from config.errors import Conflict, NotFound
from governance.choices import RetentionMode, TemplateStatus
from governance.filtersets import TemplateFilterSet, filtered
from governance.models import (
    GovernanceTemplateAuditLog,
    WorkflowTemplate,
    WorkflowTemplateAssignment,
    WorkflowTemplateSnapshot,
)
from governance.selectors.teams import team_get_for_user
from governance.services.templates import snapshot_hash


def snapshot_has_drifted(snapshot: WorkflowTemplateSnapshot) -> bool:
    return snapshot_hash(snapshot.canonical_json) != snapshot.content_sha256


def snapshot_drift_error(snapshot: WorkflowTemplateSnapshot) -> Conflict:
    return Conflict(
        f"Template snapshot {snapshot.pk} ({snapshot.template_key} v{snapshot.version}) no longer matches its "
        "recorded sha256: its content was changed outside the application. New exports cannot use it; "
        "a compliance administrator must investigate and publish a new version.",
        code="template_snapshot_drift",
        details={
            "snapshot_id": snapshot.pk,
            "template_key": snapshot.template_key,
            "version": snapshot.version,
            "recorded_sha256": snapshot.content_sha256,
            "computed_sha256": snapshot_hash(snapshot.canonical_json),
        },
    )


def snapshot_require_intact(snapshot: WorkflowTemplateSnapshot) -> WorkflowTemplateSnapshot:
    """Return ``snapshot`` if its content still matches its hash; raise Conflict ``template_snapshot_drift``."""
    if snapshot_has_drifted(snapshot):
        raise snapshot_drift_error(snapshot)
    return snapshot


def snapshot_document(snapshot: WorkflowTemplateSnapshot) -> dict[str, Any]:
    """The frozen template: ``{"stages": [{"name", "required_role", "sla_hours", "meaning"}], "sla_defaults":
    {"sla_hours", "escalate_after_hours"}, "permitted_roles", "retention_days", "template_key", "version", ...}``."""
    return json.loads(snapshot.canonical_json)


@dataclass(frozen=True)
class RecordsTerms:
    """How long the records of an export under a snapshot are kept, and how long its ladder may stay open
    (docs/records-lifecycle.md). ``retention_days`` None: the snapshot names none (the caller's default applies)."""

    retention_days: int | None
    retention_mode: str
    keep_versions: int | None
    ladder_expires_after_hours: int | None


def _positive_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def snapshot_records_terms(snapshot: WorkflowTemplateSnapshot | None) -> RecordsTerms:
    """The records terms frozen in ``snapshot``; snapshots older than format 4 (and no snapshot) read as governance
    mode, every version kept and no ladder expiry."""
    document = snapshot_document(snapshot) if snapshot is not None else {}
    mode = document.get("retention_mode")
    return RecordsTerms(
        retention_days=_positive_or_none(document.get("retention_days")),
        retention_mode=mode if mode in RetentionMode.values else RetentionMode.GOVERNANCE,
        keep_versions=_positive_or_none(document.get("retention_keep_versions")),
        ladder_expires_after_hours=_positive_or_none(document.get("ladder_expires_after_hours")),
    )


def snapshots_drifted(*, chunk_size: int = 500) -> list[WorkflowTemplateSnapshot]:
    """Every snapshot whose content no longer matches its hash (for reports and ``check_template_snapshots``)."""
    return [
        snapshot
        for snapshot in WorkflowTemplateSnapshot.objects.order_by("id").iterator(chunk_size=chunk_size)
        if snapshot_has_drifted(snapshot)
    ]


@dataclass(frozen=True)
class SnapshotResolution:
    """Which snapshot a new export of (team, protocol template) would use, and why."""

    snapshot: WorkflowTemplateSnapshot | None
    source: str  # "protocol" | "team" | "default" | "" (nothing published)
    assignment_id: int | None = None
    drifted: bool = False
    notes: list[str] = field(default_factory=list)


def _published_snapshot(*, owner_team_id: int | None, template_key: str) -> WorkflowTemplateSnapshot | None:
    """The snapshot of the highest published version of one template (its key inside its owner)."""
    owner = Q(template__team__isnull=True) if owner_team_id is None else Q(template__team_id=owner_team_id)
    return (
        WorkflowTemplateSnapshot.objects.filter(
            owner, template__template_key=template_key, template__status=TemplateStatus.PUBLISHED
        )
        .select_related("template")
        .order_by("-template__version", "-id")
        .first()
    )


def template_snapshot_resolution(*, team_id: int, protocol_template_key: str = "") -> SnapshotResolution:
    """Resolve without refusing: drift is reported in the result (the preview shows it as a warning)."""
    notes: list[str] = []
    candidates: list[tuple[str, WorkflowTemplateAssignment | None, int | None, str]] = []
    targets = Q(protocol_template_key="")
    if protocol_template_key:
        targets |= Q(protocol_template_key=protocol_template_key)
    own_or_platform = Q(template__team__isnull=True) | Q(template__team_id=team_id)
    assignments = {
        ("protocol" if assignment.protocol_template_key else "team"): assignment
        for assignment in WorkflowTemplateAssignment.objects.select_related("template")
        .filter(targets, own_or_platform, team_id=team_id)
        .order_by("id")
    }
    for source in ("protocol", "team"):
        assignment = assignments.get(source)
        if assignment is not None:
            template = assignment.template
            candidates.append((source, assignment, template.team_id, template.template_key))
    candidates.append(("default", None, None, settings.DOSSIER_DEFAULT_TEMPLATE_KEY))
    for source, assignment, owner_team_id, key in candidates:
        snapshot = _published_snapshot(owner_team_id=owner_team_id, template_key=key)
        if snapshot is None:
            notes.append(f"The {source} template '{key}' has no published version.")
            continue
        return SnapshotResolution(
            snapshot=snapshot,
            source=source,
            assignment_id=assignment.pk if assignment else None,
            drifted=snapshot_has_drifted(snapshot),
            notes=notes,
        )
    return SnapshotResolution(snapshot=None, source="", notes=notes)


def template_snapshot_for_key(*, team_id: int, template_key: str) -> WorkflowTemplateSnapshot | None:
    """The snapshot a team gets when it names a template key: its own template with that key, else the
    platform's; None when neither has a published version."""
    return _published_snapshot(owner_team_id=team_id, template_key=template_key) or _published_snapshot(
        owner_team_id=None, template_key=template_key
    )


def template_snapshot_resolve(*, team_id: int, protocol_template_key: str = "") -> WorkflowTemplateSnapshot | None:
    """The snapshot a new export pins: protocol assignment, then team assignment, then the default template.

    Returns None when nothing applicable is published. Raises Conflict ``template_snapshot_drift`` when the
    snapshot that applies no longer matches its hash, so no new export is created on tampered rules.
    """
    resolution = template_snapshot_resolution(team_id=team_id, protocol_template_key=protocol_template_key)
    if resolution.snapshot is not None and resolution.drifted:
        raise snapshot_drift_error(resolution.snapshot)
    return resolution.snapshot


def templates_for_user(*, user, filters: Any = None) -> QuerySet[WorkflowTemplate]:
    """Platform templates and those of the viewer's teams: latest versions unless ``include_all=true``; filters
    status, key and team (templates owned by that team; like every list filter it narrows what the viewer may
    see, so another team's slug selects nothing). Three queries whatever the page size."""
    # Snapshot ids come from a prefetch over the page's rows only; a correlated subquery in the SELECT list would
    # be evaluated for every row skipped by OFFSET as well.
    snapshot_ids = WorkflowTemplateSnapshot.objects.only("id", "template_id").order_by("-id")
    qs = (
        WorkflowTemplate.objects.visible_to(user)
        .select_related("created_by", "team")
        .prefetch_related(Prefetch("snapshots", queryset=snapshot_ids))
        .order_by("template_key", F("team_id").asc(nulls_first=True), "-version")
    )
    return filtered(TemplateFilterSet, filters, qs)


def templates_with_snapshots(queryset: QuerySet[WorkflowTemplate]) -> QuerySet[WorkflowTemplate]:
    return queryset.prefetch_related(Prefetch("snapshots", queryset=WorkflowTemplateSnapshot.objects.order_by("-id")))


def template_get(*, template_id: int, user) -> WorkflowTemplate:
    """One template the user may see (platform, or of one of their teams); anything else is a 404."""
    template = (
        templates_with_snapshots(
            WorkflowTemplate.objects.visible_to(user).select_related("created_by", "forked_from", "team")
        )
        .filter(pk=template_id)
        .first()
    )
    if template is None:
        raise NotFound(f"No workflow template {template_id}.", code="template_not_found")
    return template


def assignments_for_template(*, template: WorkflowTemplate, user) -> QuerySet[WorkflowTemplateAssignment]:
    """The template's assignments in the user's own teams (other teams' assignments stay private)."""
    return (
        WorkflowTemplateAssignment.objects.visible_to(user)
        .filter(template=template)
        .select_related("template", "team", "created_by")
        .order_by("id")
    )


def assignment_team_for_user(*, user, template: WorkflowTemplate, slug: str):
    """The team an assignment names: ``slug`` among the user's teams (404 otherwise), or, when no slug is given,
    the template's own team (a platform template needs one named)."""
    if slug:
        return team_get_for_user(user=user, slug=slug)
    if template.team_id is None:
        raise Conflict(
            "A platform template is assigned to a team: name it.",
            code="team_required",
            details={"fields": {"team": ["Name the team this platform template is assigned to."]}},
        )
    return template.team


def assignment_get_for_user(*, assignment_id: int, user) -> WorkflowTemplateAssignment:
    assignment = (
        WorkflowTemplateAssignment.objects.visible_to(user)
        .select_related("template", "team")
        .filter(pk=assignment_id)
        .first()
    )
    if assignment is None:
        raise NotFound(f"No template assignment {assignment_id}.", code="assignment_not_found")
    return assignment


def template_audit_logs(*, template: WorkflowTemplate | None = None) -> QuerySet[GovernanceTemplateAuditLog]:
    qs = GovernanceTemplateAuditLog.objects.select_related("template", "snapshot")
    return qs.filter(template=template) if template is not None else qs
