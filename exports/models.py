from __future__ import annotations

from django.conf import settings
from django.db import models

from exports.formats import LEGACY_EXPORT_FORMAT_VERSION
from governance.choices import Classification
from governance.models import Team, WorkflowTemplateSnapshot
from governance.querysets import TeamScopedQuerySet

from .choices import (
    ArtifactCompression,
    EvidenceKind,
    ExecutionStatus,
    ExportStatus,
    FixityStatus,
    LegalHoldScope,
    PackagingRunStatus,
    RetentionCategory,
    RetentionMode,
    RetentionRule,
    SigningKeyStatus,
    StorageTier,
    TeamDataExportStatus,
)


class StoredObjectFields(models.Model):
    """What the fixity checks and storage tiers keep about a stored object (docs/storage-tiers-and-fixity.md):
    the sha256 of its bytes as stored (ciphertext when storage encrypts), written while it was stored; its tier;
    and the last fixity check. Blank ``stored_sha256``: stored before it was recorded (``verify_artifacts
    --record-missing``)."""

    stored_sha256 = models.CharField(max_length=64, blank=True)
    storage_tier = models.CharField(max_length=10, choices=StorageTier.choices, default=StorageTier.HOT)
    fixity_checked_at = models.DateTimeField(null=True, blank=True)
    fixity_status = models.CharField(max_length=20, choices=FixityStatus.choices, default=FixityStatus.UNCHECKED)

    class Meta:
        abstract = True


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


class Evidence(StoredObjectFields):
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
    # Set from the execution's template at upload; ``enforce_retention`` purges the stored file once it passes
    # (docs/records-lifecycle.md). Null: kept until a rule says otherwise.
    retain_until = models.DateTimeField(null=True, blank=True)
    retention_mode = models.CharField(max_length=20, choices=RetentionMode.choices, default=RetentionMode.GOVERNANCE)
    purged_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    TEAM_LOOKUP = "execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["execution_id", "id"]
        verbose_name_plural = "evidence"
        indexes = [
            models.Index(fields=["execution", "kind"]),
            models.Index(fields=["retain_until"]),
            models.Index(fields=["fixity_checked_at", "id"], name="evidence_fixity_order"),
        ]
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
    # Counts per redaction type applied while rendering, and the policy used, so packaging can reproduce it.
    redaction_counts = models.JSONField(default=dict, blank=True)
    redaction_policy = models.JSONField(default=dict, blank=True)
    # The narrative covers the timeline up to and including this sequence.
    events_through_sequence = models.BigIntegerField(default=0)
    # The bundle format whose content rules (file names, evidence bytes, which events the narrative's timeline
    # holds) rendered this version; packaging builds with it so the bundle matches what was signed
    # (docs/exports.md). Exports created before it was stored follow format 2's rules.
    bundle_format_version = models.PositiveSmallIntegerField(default=LEGACY_EXPORT_FORMAT_VERSION)
    packaging_queue_state = models.JSONField(default=dict, blank=True)
    packaging_attempts = models.PositiveIntegerField(default=0)
    retain_until = models.DateTimeField(null=True, blank=True)
    # From the template snapshot at creation: the mode the artifact inherits, and how many newest versions of the
    # execution's dossier are kept (null: every version until its own date); docs/records-lifecycle.md.
    retention_mode = models.CharField(max_length=20, choices=RetentionMode.choices, default=RetentionMode.GOVERNANCE)
    retention_keep_versions = models.PositiveIntegerField(null=True, blank=True)
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


class ExportAttachment(models.Model):
    """One evidence item selected for an export, and where it lands in the bundle. Immutable once created."""

    export = models.ForeignKey(NarrativeExport, on_delete=models.PROTECT, related_name="attachments")
    kind = models.CharField(max_length=30, choices=EvidenceKind.choices)
    evidence = models.ForeignKey(Evidence, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey(ExecutionEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=300)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    bundle_path = models.CharField(max_length=400)

    TEAM_LOOKUP = "export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["export_id", "bundle_path"]
        constraints = [
            models.UniqueConstraint(fields=["export", "bundle_path"], name="export_attachment_path_unique"),
            models.CheckConstraint(
                condition=models.Q(evidence__isnull=True) | models.Q(event__isnull=True),
                name="export_attachment_one_source",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.export_id}: {self.bundle_path}"


class SigningKey(models.Model):
    """An Ed25519 bundle signing key. The private key is stored encrypted (AES-256-GCM) and never leaves the
    server; public keys of every key, retired ones included, stay published for verification."""

    key_id = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=20, default="ed25519")
    public_key_pem = models.TextField()
    private_key_ciphertext = models.BinaryField()
    private_key_nonce = models.BinaryField()
    encryption = models.CharField(max_length=60)
    status = models.CharField(max_length=20, choices=SigningKeyStatus.choices, default=SigningKeyStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="signing_key_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.algorithm} {self.key_id} ({self.status})"


class ExportArtifact(StoredObjectFields):
    """The one published bundle of an export version. Written only after the archive is in place."""

    export = models.OneToOneField(NarrativeExport, on_delete=models.PROTECT, related_name="artifact")
    storage_path = models.CharField(max_length=500, unique=True)
    bag_name = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    compression = models.CharField(max_length=10, choices=ArtifactCompression.choices)
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="artifacts")
    payload_oxum = models.CharField(max_length=50)
    narrative_sha256 = models.CharField(max_length=64)
    # The bundle format the archive was built with (``Bundle-Format-Version``); replay rebuilds with it. Artifacts
    # published before formats were numbered are format 1.
    format_version = models.PositiveSmallIntegerField(default=1)
    retain_until = models.DateTimeField(null=True, blank=True)
    retention_mode = models.CharField(max_length=20, choices=RetentionMode.choices, default=RetentionMode.GOVERNANCE)
    # Set only by ``enforce_retention`` when it purges the bytes: downloads answer 410 from then on.
    expired_at = models.DateTimeField(null=True, blank=True)
    integrity_failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    TEAM_LOOKUP = "export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["retain_until"]),
            models.Index(fields=["fixity_checked_at", "id"], name="artifact_fixity_order"),
        ]

    def __str__(self) -> str:
        return f"artifact of export {self.export_id}: {self.bag_name}"


class PackagingRun(models.Model):
    """One attempt of the packaging worker at one export: what happened, how long it took, how it ended."""

    export = models.ForeignKey(NarrativeExport, on_delete=models.PROTECT, related_name="packaging_runs")
    attempt = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=PackagingRunStatus.choices, default=PackagingRunStatus.RUNNING)
    task_id = models.CharField(max_length=100, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    gates = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched every few seconds while the attempt runs: a stale one means the worker is gone (docs/architecture.md).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)

    TEAM_LOOKUP = "export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["export", "-started_at"]), models.Index(fields=["status", "-started_at"])]

    def __str__(self) -> str:
        return f"export {self.export_id} attempt {self.attempt}: {self.status}"


class LegalHoldQuerySet(TeamScopedQuerySet):
    def active(self) -> LegalHoldQuerySet:
        return self.filter(released_at__isnull=True)


class LegalHold(models.Model):
    """A legal hold on a whole team or on one export version: while active (not released) nothing it covers is
    purged, expired or erased. It changes no export status and has no expiry (docs/records-lifecycle.md)."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="legal_holds")
    scope = models.CharField(max_length=10, choices=LegalHoldScope.choices)
    export = models.ForeignKey(
        NarrativeExport, null=True, blank=True, on_delete=models.PROTECT, related_name="legal_holds"
    )
    reason = models.TextField()
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    placed_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.TextField(blank=True)

    TEAM_LOOKUP = "team"
    objects = LegalHoldQuerySet.as_manager()

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [
            models.Index(fields=["team"], condition=models.Q(released_at__isnull=True), name="legal_hold_active_team"),
            models.Index(
                fields=["export"], condition=models.Q(released_at__isnull=True), name="legal_hold_active_export"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(scope=LegalHoldScope.TEAM, export__isnull=True))
                | (models.Q(scope=LegalHoldScope.EXPORT, export__isnull=False)),
                name="legal_hold_scope_matches_export",
            ),
            models.CheckConstraint(
                condition=models.Q(released_at__isnull=True, released_by__isnull=True)
                | models.Q(released_at__isnull=False),
                name="legal_hold_release_complete",
            ),
        ]

    def __str__(self) -> str:
        target = f"export {self.export_id}" if self.export_id else f"team {self.team_id}"
        return f"legal hold {self.pk} on {target}{' (released)' if self.released_at else ''}"

    @property
    def is_active(self) -> bool:
        return self.released_at is None


class RetentionTombstone(models.Model):
    """What ``enforce_retention`` purged: which object, under which rule, when, and the digest of the bytes
    that were deleted, so an inspector can tell a purge from a loss (docs/records-lifecycle.md)."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=20, choices=RetentionCategory.choices)
    rule = models.CharField(max_length=20, choices=RetentionRule.choices)
    export = models.ForeignKey(NarrativeExport, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    artifact = models.ForeignKey(ExportArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    evidence = models.ForeignKey(Evidence, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    storage_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField(default=0)
    retain_until = models.DateTimeField(null=True, blank=True)
    retention_mode = models.CharField(max_length=20, choices=RetentionMode.choices)
    purged_at = models.DateTimeField()

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-purged_at", "-id"]
        indexes = [models.Index(fields=["team", "-purged_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(artifact__isnull=True) | models.Q(evidence__isnull=True),
                name="retention_tombstone_one_object",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} {self.storage_path} purged {self.purged_at:%Y-%m-%d}"


class TeamDataExport(models.Model):
    """One request for a team's whole record as a signed bundle (docs/team-data.md), built by a worker and kept,
    encrypted like every stored object, until it is downloaded or the team's content is erased."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="data_exports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=TeamDataExportStatus.choices, default=TeamDataExportStatus.QUEUED)
    storage_path = models.CharField(max_length=500, blank=True)
    bag_name = models.CharField(max_length=100, blank=True)
    compression = models.CharField(max_length=10, choices=ArtifactCompression.choices, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    key_id = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"data export {self.pk} of team {self.team_id} ({self.status})"
