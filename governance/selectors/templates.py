"""Which published template snapshot applies to a new export, and whether a snapshot still matches its hash."""

from __future__ import annotations

from django.conf import settings

from governance.choices import TemplateStatus
from governance.models import WorkflowTemplate, WorkflowTemplateAssignment, WorkflowTemplateSnapshot
from governance.services.templates import snapshot_hash


def snapshot_has_drifted(snapshot: WorkflowTemplateSnapshot) -> bool:
    return snapshot_hash(snapshot.canonical_json) != snapshot.content_sha256


def _latest_snapshot(template: WorkflowTemplate | None) -> WorkflowTemplateSnapshot | None:
    if template is None or template.status != TemplateStatus.PUBLISHED:
        return None
    return template.snapshots.order_by("-id").first()


def template_snapshot_resolve(*, team_id: int, protocol_template_key: str = "") -> WorkflowTemplateSnapshot | None:
    """The snapshot for a new export: protocol assignment first, then team assignment, then the default template."""
    assignments = WorkflowTemplateAssignment.objects.select_related("template")
    if protocol_template_key:
        assignment = assignments.filter(protocol_template_key=protocol_template_key).first()
        snapshot = _latest_snapshot(assignment.template if assignment else None)
        if snapshot:
            return snapshot
    assignment = assignments.filter(team_id=team_id).first()
    snapshot = _latest_snapshot(assignment.template if assignment else None)
    if snapshot:
        return snapshot
    default = (
        WorkflowTemplate.objects.filter(
            template_key=settings.DOSSIER_DEFAULT_TEMPLATE_KEY, status=TemplateStatus.PUBLISHED
        )
        .order_by("-version")
        .first()
    )
    return _latest_snapshot(default)
