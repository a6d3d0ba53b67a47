from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from governance.choices import TemplateStatus
from governance.querysets import TeamScopedQuerySet

slug_validator = RegexValidator(r"^[a-z0-9][a-z0-9-]{0,62}$", "Use lowercase letters, digits and dashes.")


class Team(models.Model):
    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    TEAM_LOOKUP = "id"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Role(models.Model):
    """Roles are data so that organisations can add their own; a migration seeds the standard ones."""

    key = models.SlugField(max_length=50, unique=True)
    label = models.CharField(max_length=100)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.label


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team", "role"], name="membership_unique_role")]
        indexes = [models.Index(fields=["team", "role"])]

    def __str__(self) -> str:
        return f"{self.user} · {self.role.key} @ {self.team.slug}"


class AuditChainHead(models.Model):
    """The single row whose lock serializes appends to the audit chain, so the chain never forks."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)


class AuditEvent(models.Model):
    """An append-only, hash-chained record of every state change.

    ``hash`` = sha256 over the canonical JSON of the row's content and ``prev_hash`` (see
    ``governance.services.audit.audit_row_hash``). On PostgreSQL a trigger refuses UPDATE and DELETE.
    """

    sequence = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=120, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["sequence"]
        indexes = [models.Index(fields=["object_type", "object_id"]), models.Index(fields=["team", "sequence"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"


class AuditChainVerification(models.Model):
    """The outcome of each scheduled or manual verification of the audit chain."""

    checked_at = models.DateTimeField()
    rows = models.BigIntegerField()
    ok = models.BooleanField()
    broken_sequence = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-checked_at"]


class WorkflowTemplate(models.Model):
    """A versioned approval-ladder template. Versions share ``template_key``; exactly one is the latest."""

    template_key = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=TemplateStatus.choices, default=TemplateStatus.DRAFT)
    is_latest = models.BooleanField(default=True)
    forked_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="forks")
    stage_blueprints = models.JSONField(default=list, blank=True)
    permitted_roles = models.JSONField(default=list, blank=True)
    sla_defaults = models.JSONField(default=dict, blank=True)
    retention_days = models.PositiveIntegerField(default=3650)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "execution_narrative_workflow_templates"
        ordering = ["template_key", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["template_key", "version"], name="workflow_template_key_version_unique"),
            models.UniqueConstraint(
                fields=["template_key"], condition=models.Q(is_latest=True), name="workflow_template_one_latest"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template_key} v{self.version}"


class WorkflowTemplateSnapshot(models.Model):
    """The immutable, hashed content of a template as it was published. Exports pin the snapshot they used."""

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.PROTECT, related_name="snapshots")
    template_key = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    canonical_json = models.TextField()
    content_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "execution_narrative_workflow_template_snapshots"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"snapshot {self.pk} of {self.template_key} v{self.version}"


class WorkflowTemplateAssignment(models.Model):
    """Which template a team, or a protocol template, uses for new exports. Protocol beats team beats default."""

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.PROTECT, related_name="assignments")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    protocol_template_key = models.SlugField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "execution_narrative_workflow_template_assignments"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(team__isnull=False) & models.Q(protocol_template_key=""))
                | (models.Q(team__isnull=True) & ~models.Q(protocol_template_key="")),
                name="template_assignment_one_target",
            ),
            models.UniqueConstraint(
                fields=["team"], condition=models.Q(team__isnull=False), name="template_assignment_one_per_team"
            ),
            models.UniqueConstraint(
                fields=["protocol_template_key"],
                condition=~models.Q(protocol_template_key=""),
                name="template_assignment_one_per_protocol",
            ),
        ]

    def __str__(self) -> str:
        target = self.protocol_template_key or f"team {self.team_id}"
        return f"{self.template} → {target}"
