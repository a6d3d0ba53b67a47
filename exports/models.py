from django.conf import settings
from django.db import models

from governance.choices import Classification
from governance.models import Team, WorkflowTemplateSnapshot
from governance.querysets import TeamScopedQuerySet

from .choices import EvidenceKind, ExecutionStatus, ExportStatus


class Execution(models.Model):
    """One experiment console session: the subject of a dossier."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="executions")
    title = models.CharField(max_length=300)
    protocol_template_key = models.SlugField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=ExecutionStatus.choices, default=ExecutionStatus.RUNNING)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="executions")
    last_sequence = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"]), models.Index(fields=["protocol_template_key"])]

    def __str__(self) -> str:
        return f"{self.title} (#{self.pk})"


class ExecutionEvent(models.Model):
    """An append-only timeline entry. ``sequence`` is assigned by the server, strictly increasing per execution."""

    execution = models.ForeignKey(Execution, on_delete=models.PROTECT, related_name="events")
    sequence = models.BigIntegerField()
    event_type = models.CharField(max_length=120)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payload = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()

    TEAM_LOOKUP = "execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["execution_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "sequence"], name="execution_event_sequence_unique"),
            models.CheckConstraint(condition=models.Q(sequence__gt=0), name="execution_event_sequence_positive"),
        ]
        indexes = [models.Index(fields=["execution", "event_type"])]

    def __str__(self) -> str:
        return f"{self.execution_id}#{self.sequence} {self.event_type}"


class Evidence(models.Model):
    """A piece of evidence attached to an execution: an uploaded file, a notebook entry or structured data."""

    execution = models.ForeignKey(Execution, on_delete=models.PROTECT, related_name="evidence")
    kind = models.CharField(max_length=30, choices=EvidenceKind.choices)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    data = models.JSONField(null=True, blank=True)
    storage_path = models.CharField(max_length=500, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=150, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    classification = models.CharField(max_length=20, choices=Classification.choices, default=Classification.INTERNAL)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    TEAM_LOOKUP = "execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["execution_id", "id"]
        verbose_name_plural = "evidence"
        indexes = [models.Index(fields=["execution", "kind"])]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind=EvidenceKind.TIMELINE_EVENT), name="evidence_kind_not_timeline_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class NarrativeExport(models.Model):
    """Version N of the dossier of one execution: what was selected, rendered and must be signed off."""

    execution = models.ForeignKey(Execution, on_delete=models.PROTECT, related_name="narrative_exports")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=30, choices=ExportStatus.choices, default=ExportStatus.AWAITING_APPROVAL)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    template_snapshot = models.ForeignKey(
        WorkflowTemplateSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="exports"
    )
    narrative_digest = models.CharField(max_length=64, blank=True)
    narrative_markdown = models.TextField(blank=True)
    evidence_manifest = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    classification = models.CharField(max_length=20, choices=Classification.choices, default=Classification.INTERNAL)
    packaging_queue_state = models.JSONField(default=dict, blank=True)
    packaging_attempts = models.PositiveIntegerField(default=0)
    retain_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    packaged_at = models.DateTimeField(null=True, blank=True)

    TEAM_LOOKUP = "execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        db_table = "execution_narrative_exports"
        ordering = ["execution_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "version"], name="narrative_export_version_unique"),
        ]
        indexes = [models.Index(fields=["status", "queued_at"])]

    def __str__(self) -> str:
        return f"export {self.pk} (execution {self.execution_id} v{self.version})"
