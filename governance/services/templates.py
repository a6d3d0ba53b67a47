"""Writes for workflow templates: publishing freezes an immutable, hashed snapshot."""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict
from governance.choices import TemplateStatus
from governance.models import WorkflowTemplate, WorkflowTemplateSnapshot
from governance.services.audit import audit_record, canonical_json


def template_snapshot_document(template: WorkflowTemplate) -> dict:
    """Everything about a template that decides how a ladder runs, in a stable shape."""
    return {
        "template_key": template.template_key,
        "version": template.version,
        "name": template.name,
        "description": template.description,
        "stages": template.stage_blueprints,
        "permitted_roles": sorted(template.permitted_roles),
        "sla_defaults": template.sla_defaults,
        "retention_days": template.retention_days,
    }


def snapshot_hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


@transaction.atomic
def template_publish(*, template: WorkflowTemplate, actor=None) -> WorkflowTemplateSnapshot:
    template = WorkflowTemplate.objects.select_for_update().get(pk=template.pk)
    if template.status != TemplateStatus.DRAFT:
        raise Conflict(f"Only a draft can be published; this template is {template.status}.", code="template_not_draft")
    canonical = canonical_json(template_snapshot_document(template))
    snapshot = WorkflowTemplateSnapshot.objects.create(
        template=template,
        template_key=template.template_key,
        version=template.version,
        canonical_json=canonical,
        content_sha256=snapshot_hash(canonical),
        created_by=actor,
    )
    template.status = TemplateStatus.PUBLISHED
    template.published_at = timezone.now()
    template.save(update_fields=["status", "published_at", "updated_at"])
    audit_record(
        action="workflow_template.published",
        actor=actor,
        obj=template,
        payload={"snapshot_id": snapshot.pk, "sha256": snapshot.content_sha256},
    )
    return snapshot
