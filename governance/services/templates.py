"""Writes for workflow templates: versions and forks, draft → published → archived, snapshots, assignments.

Every template belongs to a team or to the platform (``team`` null). Every function that takes ``actor`` refuses
users who do not curate the owner: ``compliance`` or ``admin`` in that team, a superuser for platform templates
(``governance.permissions.require_template_curator``); ``actor=None`` means the system itself (``seed_demo``,
data migrations). Each change writes a ``GovernanceTemplateAuditLog`` row and a row in the hash-chained audit
trail in the caller's transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from governance.choices import RetentionMode, RoleKey, TemplateAuditAction, TemplateStatus
from governance.models import (
    SNAPSHOT_FORMAT_VERSION,
    GovernanceTemplateAuditLog,
    Role,
    Team,
    WorkflowStageBlueprint,
    WorkflowTemplate,
    WorkflowTemplateAssignment,
    WorkflowTemplateSnapshot,
)
from governance.permissions import require_template_curator
from governance.selectors.teams import user_has_role
from governance.services.audit import audit_record, canonical_json, normalize_payload
from governance.validation import DEFAULT_REJECT_MEANING, template_content_normalize, template_content_validate

CONTENT_FIELDS = ("stages", "permitted_roles", "sla_defaults", "retention_days")
# What happens to a template's records after release (docs/records-lifecycle.md): set on a draft, copied to the next
# version or fork, frozen in the snapshot. Null keep-versions or expiry hours switch the rule off.
RECORDS_FIELDS = ("retention_mode", "retention_keep_versions", "ladder_expires_after_hours")
DESCRIPTIVE_FIELDS = ("name", "description")


def template_snapshot_document(template: WorkflowTemplate) -> dict:
    """Everything about a template that decides how a ladder runs and how long its records are kept, in a stable
    shape (snapshot format 4: format 1 lacked ``format_version`` and ``team``, format 2 the stages'
    ``reject_meaning``, format 3 the records terms; their snapshots keep their content and hashes). A stage stored
    before rejection meanings existed rejects with the default."""
    return {
        "format_version": SNAPSHOT_FORMAT_VERSION,
        "team": template.team.slug if template.team else None,
        "template_key": template.template_key,
        "version": template.version,
        "name": template.name,
        "description": template.description,
        "stages": [
            {**stage, "reject_meaning": stage.get("reject_meaning") or DEFAULT_REJECT_MEANING}
            for stage in template.stage_blueprints
        ],
        "permitted_roles": sorted(template.permitted_roles),
        "sla_defaults": template.sla_defaults,
        "retention_days": template.retention_days,
        "retention_mode": template.retention_mode,
        "retention_keep_versions": template.retention_keep_versions,
        "ladder_expires_after_hours": template.ladder_expires_after_hours,
    }


def _records_apply(template: WorkflowTemplate, *, source: WorkflowTemplate | None, given: Mapping[str, Any]) -> None:
    """Set the records terms: given values win (null switches a rule off), the source template fills the rest."""
    unknown = set(given) - set(RECORDS_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
            details={"fields": {field: ["This field cannot be changed."] for field in sorted(unknown)}},
        )
    for field in RECORDS_FIELDS:
        if field in given:
            setattr(template, field, given[field])
        elif source is not None:
            setattr(template, field, getattr(source, field))
    errors = records_terms_errors(
        mode=template.retention_mode,
        keep_versions=template.retention_keep_versions,
        expires_after_hours=template.ladder_expires_after_hours,
    )
    if errors:
        raise ValidationFailed("The records terms are not valid.", details={"fields": errors})


def records_terms_errors(*, mode: Any, keep_versions: Any, expires_after_hours: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if mode not in RetentionMode.values:
        errors["retention_mode"] = [f"Choose one of {', '.join(RetentionMode.values)}."]
    for field, value in (
        ("retention_keep_versions", keep_versions),
        ("ladder_expires_after_hours", expires_after_hours),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            errors[field] = ["A whole number of at least 1, or null to switch the rule off."]
    return errors


def snapshot_hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


def known_role_keys() -> set[str]:
    return set(Role.objects.values_list("key", flat=True))


def template_log(
    *,
    action: str,
    actor=None,
    template: WorkflowTemplate | None = None,
    snapshot: WorkflowTemplateSnapshot | None = None,
    team_id: int | None = None,
    execution_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> GovernanceTemplateAuditLog:
    """One ``GovernanceTemplateAuditLog`` row plus its twin in the audit chain (call inside a transaction)."""
    source = template or (snapshot.template if snapshot else None)
    if team_id is None and source is not None:
        team_id = source.team_id
    details = normalize_payload(details)
    row = GovernanceTemplateAuditLog.objects.create(
        action=action,
        template=source,
        snapshot=snapshot,
        template_key=source.template_key if source else "",
        template_version=source.version if source else None,
        actor=actor,
        actor_username=getattr(actor, "username", "") or "",
        team_id=team_id,
        execution_id=execution_id,
        details=details,
    )
    audit_record(
        action=f"workflow_template.{action}",
        actor=actor,
        obj=source,
        team_id=team_id,
        payload={
            **details,
            "template_audit_log_id": row.pk,
            "snapshot_id": snapshot.pk if snapshot else None,
            "execution_id": execution_id,
        },
    )
    return row


def _content(template: WorkflowTemplate | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Content for a new or changed template: given values win, the source template fills the rest."""
    base = (
        {
            "stages": template.stage_blueprints,
            "permitted_roles": template.permitted_roles,
            "sla_defaults": template.sla_defaults,
            "retention_days": template.retention_days,
        }
        if template
        else {}
    )
    merged = {key: overrides[key] if overrides.get(key) is not None else base.get(key) for key in CONTENT_FIELDS}
    if overrides.get("stages") is not None and overrides.get("permitted_roles") is None:
        merged["permitted_roles"] = None  # new stages without explicit roles: permit exactly the stages' roles
    content = template_content_normalize(**{**merged, "stages": merged["stages"] if merged["stages"] else []})
    inherited = [key for key in CONTENT_FIELDS if template is not None and overrides.get(key) is None]
    mixed = inherited and len(inherited) < len(CONTENT_FIELDS)
    try:
        template_content_validate(content, known_roles=known_role_keys())
    except ValidationFailed as exc:
        if not mixed or template is None:  # fields are only inherited from a template
            raise
        # Fields given in the request that do not fit those the template already holds: the request is well
        # formed, the conflict is with stored content (docs/api-schema.md).
        raise Conflict(
            f"{exc.message} (with {', '.join(inherited)} taken from template {template.pk})",
            code="template_content_conflict",
            details=exc.details,
        ) from exc
    return content


def _apply_content(template: WorkflowTemplate, content: Mapping[str, Any]) -> None:
    template.stage_blueprints = content["stages"]
    template.permitted_roles = content["permitted_roles"]
    template.sla_defaults = content["sla_defaults"]
    template.retention_days = content["retention_days"]


def _stage_rows_sync(template: WorkflowTemplate) -> None:
    """Make the inline rows mirror ``stage_blueprints`` (rewritten only when they differ)."""
    wanted = [
        (
            position,
            stage["name"],
            stage["required_role"],
            Decimal(str(stage["sla_hours"])),
            stage["meaning"],
            stage.get("reject_meaning") or DEFAULT_REJECT_MEANING,
        )
        for position, stage in enumerate(template.stage_blueprints, start=1)
    ]
    current = list(
        template.stage_rows.order_by("position").values_list(
            "position", "name", "required_role_id", "sla_hours", "meaning", "reject_meaning"
        )
    )
    if current == wanted:
        return
    template.stage_rows.all().delete()
    WorkflowStageBlueprint.objects.bulk_create(
        WorkflowStageBlueprint(
            template=template,
            position=position,
            name=name,
            required_role_id=role,
            sla_hours=hours,
            meaning=meaning,
            reject_meaning=reject_meaning,
        )
        for position, name, role, hours, meaning, reject_meaning in wanted
    )


def template_stage_rows_ensure(*, template: WorkflowTemplate) -> None:
    """Give a draft written directly to the database (no inline rows yet) the rows the admin edits.

    Content is unchanged, so nothing is audited.
    """
    if template.is_draft and template.stage_blueprints and not template.stage_rows.exists():
        try:
            with transaction.atomic():
                _stage_rows_sync(template)
        except (KeyError, TypeError, ValueError, ArithmeticError, IntegrityError):
            return  # content the rules would refuse: the curator sees an empty ladder and re-enters it


def _require_draft(template: WorkflowTemplate, action: str) -> None:
    if template.status != TemplateStatus.DRAFT:
        raise Conflict(
            f"Only a draft can be {action}; {template} is {template.status}. Create a new version instead.",
            code="template_not_draft",
            details={"template_id": template.pk, "status": template.status},
        )


def _locked(template: WorkflowTemplate) -> WorkflowTemplate:
    return WorkflowTemplate.objects.select_for_update().get(pk=template.pk)


def _require_may_fork(*, source: WorkflowTemplate, actor) -> None:
    """Forking needs to see the source (404 otherwise) and to curate its owner: a platform template is forked by
    superusers only, a team's template by that team's curators (into that team, or another team they curate)."""
    if actor is None or actor.is_superuser:
        return
    if not WorkflowTemplate.objects.visible_to(actor).filter(pk=source.pk).exists():
        raise NotFound(f"No workflow template {source.pk}.", code="template_not_found")
    require_template_curator(actor=actor, team_id=source.team_id, action="fork workflow templates")


def _require_same_owner(*, source: WorkflowTemplate, team: Team | None) -> None:
    if source.team_id != (team.pk if team else None):
        raise ValidationFailed(
            "A new version stays with the owner of the template it succeeds; give a new template_key to fork it "
            "into another team.",
            code="template_team_mismatch",
            details={"fields": {"team": ["Must be the team of the template this version succeeds."]}},
        )


def _require_new_status(status: str) -> None:
    if status not in (TemplateStatus.DRAFT, TemplateStatus.PUBLISHED):
        raise ValidationFailed(
            "A new template is a draft or published.",
            details={"fields": {"status": ["Choose draft or published."]}},
        )


def _new_key(*, template_key: str, source: WorkflowTemplate | None, team: Team | None) -> str:
    key = template_key or (source.template_key if source else "")
    if not key:
        raise ValidationFailed(
            "Give a template_key, or forked_from_id to make a new version of an existing template.",
            details={"fields": {"template_key": ["This field is required."]}},
        )
    if source is not None and key == source.template_key:
        _require_same_owner(source=source, team=team)
    return key


def _new_name(*, name: str, source: WorkflowTemplate | None) -> str:
    name = name.strip() or (source.name if source else "")
    if not name:
        raise ValidationFailed("Give the template a name.", details={"fields": {"name": ["This field is required."]}})
    return name


def _save_new_version(template: WorkflowTemplate) -> None:
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError as exc:
        raise Conflict(
            f"Another version of '{template.template_key}' was created at the same time; try again.",
            code="template_version_conflict",
        ) from exc


def _retire_latest(*, team: Team | None, key: str) -> tuple[int, list[WorkflowTemplate]]:
    """The next version number of the owner's ``key``, and its latest versions, now retired (locked first)."""
    family = WorkflowTemplate.objects.family(team_id=team.pk if team else None, template_key=key)
    previous = list(family.select_for_update().filter(is_latest=True))
    family.filter(is_latest=True).update(is_latest=False, updated_at=timezone.now())
    return (family.aggregate(v=Max("version"))["v"] or 0) + 1, previous


@transaction.atomic
def template_create(
    *,
    actor,
    team: Team | None = None,
    name: str = "",
    template_key: str = "",
    description: str | None = None,
    stages: list[dict[str, Any]] | None = None,
    permitted_roles: list[str] | None = None,
    sla_defaults: dict[str, Any] | None = None,
    retention_days: int | None = None,
    records: Mapping[str, Any] | None = None,
    forked_from: WorkflowTemplate | None = None,
    status: str = TemplateStatus.DRAFT,
) -> WorkflowTemplate:
    """Create a template owned by ``team`` (``None``: a platform template, superusers only).

    An existing ``template_key`` of that owner — or ``forked_from`` without a new key — makes the next version
    of that key and retires its previous latest (``is_latest=False``); lineage is kept in ``forked_from``
    (the explicit source, else the version it succeeds). Fields not given are copied from ``forked_from``;
    ``records`` holds the records terms given (``RECORDS_FIELDS``), the others come from the source or defaults.
    ``status="published"`` publishes it at once, with the same checks and snapshot as ``template_publish``."""
    _require_new_status(status)
    require_template_curator(actor=actor, team_id=team.pk if team else None, action="create workflow templates")
    source = WorkflowTemplate.objects.select_for_update().get(pk=forked_from.pk) if forked_from else None
    if source is not None:
        _require_may_fork(source=source, actor=actor)
    key = _new_key(template_key=template_key, source=source, team=team)
    name = _new_name(name=name, source=source)
    given = {"stages": stages, "permitted_roles": permitted_roles, "sla_defaults": sla_defaults}
    content = _content(source, {**given, "retention_days": retention_days})
    version, previous = _retire_latest(team=team, key=key)
    if description is None:
        description = source.description if source else ""
    template = WorkflowTemplate(
        team=team,
        template_key=key,
        version=version,
        name=name,
        description=description,
        status=TemplateStatus.DRAFT,
        is_latest=True,
        forked_from=source or (previous[0] if previous else None),
        redaction_enabled=previous[0].redaction_enabled if previous else True,
        created_by=actor,
    )
    _apply_content(template, content)
    _records_apply(template, source=source or (previous[0] if previous else None), given=records or {})
    _save_new_version(template)
    _stage_rows_sync(template)
    _log_new_version(template=template, actor=actor, forked=source is not None, retired=previous)
    if status == TemplateStatus.PUBLISHED:
        template_publish(template=template, actor=actor)
        template.refresh_from_db()
    return template


def _log_new_version(*, template: WorkflowTemplate, actor, forked: bool, retired: list[WorkflowTemplate]) -> None:
    template_log(
        action=TemplateAuditAction.FORKED if forked else TemplateAuditAction.CREATED,
        actor=actor,
        template=template,
        details={
            "version": template.version,
            "forked_from_id": template.forked_from_id,
            "retired_ids": [r.pk for r in retired],
        },
    )


@transaction.atomic
def template_redaction_set(*, template: WorkflowTemplate, enabled: bool, actor) -> int:
    """Switch redaction on or off for every version of ``template``'s key (docs/redaction.md); returns how many
    versions changed. Only ``compliance`` in the owning team may do it (a superuser for platform templates);
    exports created afterwards follow the switch, and a bundle built without redaction says ``Redaction: off``."""
    if not _may_switch_redaction(actor, team_id=template.team_id):
        raise PermissionDenied(
            "Only a compliance officer of the template's team may switch its redaction.",
            details={"required_roles": [RoleKey.COMPLIANCE]},
        )
    family = WorkflowTemplate.objects.family(team_id=template.team_id, template_key=template.template_key)
    rows = list(family.select_for_update().order_by("version"))
    changed = [row.pk for row in rows if row.redaction_enabled != enabled]
    if changed:
        family.filter(pk__in=changed).update(redaction_enabled=enabled, updated_at=timezone.now())
        template_log(
            action=TemplateAuditAction.REDACTION_CHANGED,
            actor=actor,
            template=template,
            details={"redaction_enabled": enabled, "template_ids": changed},
        )
    template.redaction_enabled = enabled
    return len(changed)


def _may_switch_redaction(actor, *, team_id: int | None) -> bool:
    if actor is None or not actor.is_active:
        return False
    if team_id is None:
        return actor.is_superuser
    return user_has_role(user=actor, team_id=team_id, roles=frozenset({RoleKey.COMPLIANCE}))


def template_fork(
    *, template: WorkflowTemplate, actor, template_key: str = "", name: str = "", team: Team | None = None
) -> WorkflowTemplate:
    """A new draft copied from ``template``: the next version of its key (same owner), or version 1 of a new key
    owned by ``team`` (default: the source's owner)."""
    owner = team if template_key and team is not None else template.team
    return template_create(actor=actor, team=owner, template_key=template_key, name=name, forked_from=template)


@transaction.atomic
def template_update(*, template: WorkflowTemplate, actor, **changes: Any) -> WorkflowTemplate:
    """Change a draft's name, description or content (stages, permitted_roles, sla_defaults, retention_days)."""
    require_template_curator(actor=actor, team_id=template.team_id)
    unknown = set(changes) - set(CONTENT_FIELDS) - set(DESCRIPTIVE_FIELDS) - set(RECORDS_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
            details={"fields": {field: ["This field cannot be changed."] for field in sorted(unknown)}},
        )
    template = _locked(template)
    _require_draft(template, "edited")
    if changes.get("name") is not None:
        if not str(changes["name"]).strip():
            raise ValidationFailed("Give the template a name.", details={"fields": {"name": ["Must not be blank."]}})
        template.name = str(changes["name"]).strip()
    if changes.get("description") is not None:
        template.description = changes["description"]
    _apply_content(template, _content(template, changes))
    _records_apply(template, source=None, given={k: v for k, v in changes.items() if k in RECORDS_FIELDS})
    template.save()
    _stage_rows_sync(template)
    template_log(
        action=TemplateAuditAction.UPDATED, actor=actor, template=template, details={"fields": sorted(changes)}
    )
    return template


@transaction.atomic
def template_publish(*, template: WorkflowTemplate, actor=None) -> WorkflowTemplateSnapshot:
    """Freeze a valid draft into an immutable snapshot (canonical JSON + sha256) and mark it published."""
    require_template_curator(actor=actor, team_id=template.team_id, action="publish workflow templates")
    template = _locked(template)
    _require_draft(template, "published")
    _apply_content(template, _content(template, {}))
    canonical = canonical_json(template_snapshot_document(template))
    snapshot = WorkflowTemplateSnapshot.objects.create(
        template=template,
        template_key=template.template_key,
        version=template.version,
        format_version=SNAPSHOT_FORMAT_VERSION,
        canonical_json=canonical,
        content_sha256=snapshot_hash(canonical),
        created_by=actor,
    )
    template.status = TemplateStatus.PUBLISHED
    template.published_at = timezone.now()
    template.save()
    _stage_rows_sync(template)
    template_log(
        action=TemplateAuditAction.PUBLISHED,
        actor=actor,
        template=template,
        snapshot=snapshot,
        details={"snapshot_id": snapshot.pk, "sha256": snapshot.content_sha256},
    )
    return snapshot


@transaction.atomic
def template_archive(*, template: WorkflowTemplate, actor=None) -> WorkflowTemplate:
    """Withdraw a draft or published template: no new export uses it; pinned snapshots stay valid."""
    require_template_curator(actor=actor, team_id=template.team_id, action="archive workflow templates")
    template = _locked(template)
    if template.status == TemplateStatus.ARCHIVED:
        raise Conflict(
            f"{template} is already archived.", code="template_archived", details={"template_id": template.pk}
        )
    previous_status = template.status
    template.status = TemplateStatus.ARCHIVED
    template.archived_at = timezone.now()
    template.save(update_fields=["status", "archived_at", "updated_at"])
    template_log(
        action=TemplateAuditAction.ARCHIVED, actor=actor, template=template, details={"from_status": previous_status}
    )
    return template


@transaction.atomic
def template_assign(
    *, template: WorkflowTemplate, actor, team: Team, protocol_template_key: str = ""
) -> tuple[WorkflowTemplateAssignment, bool]:
    """Make ``template``'s key the ladder of ``team``, or of a protocol template inside ``team``.
    Returns (assignment, created).

    The template must be ``team``'s own or a platform template, and the actor must curate ``team``. A target has
    one assignment: assigning another template moves it (the change is audited). New exports use the highest
    published version of the assigned template.
    """
    require_template_curator(actor=actor, team_id=team.pk, action="assign workflow templates")
    template = _locked(template)
    if template.team_id not in (None, team.pk):
        raise ValidationFailed(
            "A template can only be assigned inside its own team; platform templates can be assigned to any team.",
            code="template_team_mismatch",
            details={"fields": {"team": ["The template belongs to another team."]}},
        )
    if template.status == TemplateStatus.ARCHIVED:
        raise Conflict(
            f"{template} is archived and cannot be assigned.",
            code="template_archived",
            details={"template_id": template.pk},
        )
    target = {"team": team, "protocol_template_key": protocol_template_key}
    assignment = WorkflowTemplateAssignment.objects.select_for_update().filter(**target).first()
    previous_template_id = assignment.template_id if assignment else None
    if assignment and assignment.template_id == template.pk:
        return assignment, False
    created = assignment is None
    if assignment is None:
        try:
            with transaction.atomic():
                assignment = WorkflowTemplateAssignment.objects.create(template=template, created_by=actor, **target)
        except IntegrityError as exc:
            raise Conflict("This target was assigned at the same time; try again.", code="assignment_conflict") from exc
    else:
        assignment.template = template
        assignment.save(update_fields=["template"])
    template_log(
        action=TemplateAuditAction.ASSIGNED,
        actor=actor,
        template=template,
        team_id=team.pk,
        details={
            "assignment_id": assignment.pk,
            "team": team.slug,
            "protocol_template_key": protocol_template_key or None,
            "previous_template_id": previous_template_id,
        },
    )
    return assignment, created


@transaction.atomic
def assignment_delete(*, assignment: WorkflowTemplateAssignment, actor) -> None:
    require_template_curator(actor=actor, team_id=assignment.team_id, action="remove template assignments")
    assignment = WorkflowTemplateAssignment.objects.select_for_update().select_related("template").get(pk=assignment.pk)
    template_log(
        action=TemplateAuditAction.UNASSIGNED,
        actor=actor,
        template=assignment.template,
        team_id=assignment.team_id,
        details={
            "assignment_id": assignment.pk,
            "team_id": assignment.team_id,
            "protocol_template_key": assignment.protocol_template_key or None,
        },
    )
    assignment.delete()


@transaction.atomic
def template_preview_record(
    *,
    actor,
    execution_id: int,
    team_id: int,
    snapshot: WorkflowTemplateSnapshot | None,
    details: dict[str, Any] | None = None,
) -> GovernanceTemplateAuditLog:
    """Record that ``actor`` previewed the ladder of an execution (which snapshot, what it projected, warnings).

    The caller has already checked that ``actor`` may see the execution.
    """
    return template_log(
        action=TemplateAuditAction.PREVIEWED,
        actor=actor,
        snapshot=snapshot,
        team_id=team_id,
        execution_id=execution_id,
        details={"snapshot_sha256": snapshot.content_sha256 if snapshot else None, **(details or {})},
    )
