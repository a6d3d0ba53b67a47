from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from config.errors import Conflict
from governance.choices import (
    DEFAULT_CLEARANCE,
    BaselineEventType,
    BaselineStatus,
    Classification,
    ClearancePolicy,
    TemplateAuditAction,
    TemplateStatus,
    TimestampStatus,
    TimestampSubject,
)
from governance.querysets import TeamScopedQuerySet

slug_validator = RegexValidator(r"^[a-z0-9][a-z0-9-]{0,62}$", "Use lowercase letters, digits and dashes.")


# IANA zone names this server knows (``Europe/Berlin``); see docs/pages.md.
TIME_ZONES = frozenset(zoneinfo.available_timezones())


def time_zone_validator(value: str) -> None:
    if value not in TIME_ZONES:
        raise ValidationError(f"'{value}' is not a known IANA time zone.", code="invalid_time_zone")


class Team(models.Model):
    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    # The zone the team's pages and PDFs show times in when a member has chosen none (docs/pages.md).
    time_zone = models.CharField(max_length=64, default="UTC", validators=[time_zone_validator])
    clearance_policy = models.CharField(max_length=10, choices=ClearancePolicy.choices, default=ClearancePolicy.DENY)
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


class UserPreference(models.Model):
    """A user's own choices for pages; an empty ``time_zone`` follows the team's (docs/pages.md)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    time_zone = models.CharField(max_length=64, blank=True, validators=[time_zone_validator])
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} · {self.time_zone or 'team time zone'}"


class Clearance(models.Model):
    """One clearance per (user, team): the highest classification the user may read in that team. No row means
    ``DEFAULT_CLEARANCE`` (Internal). Written by ``clearance_set`` only (docs/clearance.md)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clearances")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="clearances")
    level = models.CharField(max_length=20, choices=Classification.choices, default=DEFAULT_CLEARANCE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="clearance_one_per_user_team")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.team.slug}: {self.level}"


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


class WorkflowTemplateQuerySet(models.QuerySet):
    """Templates belong to a team (``team``) or to the whole platform (``team`` is null)."""

    def visible_to(self, user) -> WorkflowTemplateQuerySet:
        """Platform templates and those of the viewer's teams; a foreign team's template is simply absent."""
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(
            models.Q(team__isnull=True) | models.Q(team_id__in=Membership.objects.filter(user=user).values("team_id"))
        )

    def family(self, *, team_id: int | None, template_key: str) -> WorkflowTemplateQuerySet:
        """Every version of one template: its key inside its owner (a team, or the platform)."""
        owner = models.Q(team__isnull=True) if team_id is None else models.Q(team_id=team_id)
        return self.filter(owner, template_key=template_key)


class WorkflowTemplate(models.Model):
    """A versioned approval-ladder template. Versions share ``template_key``; exactly one is the latest.

    A template belongs to a team (``team``) or, when ``team`` is null, to the platform (curated by superusers and
    usable by every team). ``template_key`` is unique per owner: the versions of one template are the rows with
    the same (team, template_key), see ``docs/templates-and-baselines.md``.

    ``stage_blueprints`` is the authoritative ordered list of stages (validated against
    ``governance/schemas/workflow_template.schema.json``); ``WorkflowStageBlueprint`` rows mirror it so that the
    admin can edit stages inline. Both are written together by the template services only.
    """

    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="workflow_templates")
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
    # Whether exports under this template are redacted (docs/redaction.md). Kept equal on every version of the
    # template by template_redaction_set, outside the versioned content: only compliance may switch it off.
    redaction_enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = WorkflowTemplateQuerySet.as_manager()

    class Meta:
        db_table = "execution_narrative_workflow_templates"
        ordering = ["template_key", "-version"]
        indexes = [models.Index(fields=["template_key", "-version"], name="workflow_template_key_version")]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "template_key", "version"],
                condition=models.Q(team__isnull=False),
                name="workflow_template_team_key_version_unique",
            ),
            models.UniqueConstraint(
                fields=["template_key", "version"],
                condition=models.Q(team__isnull=True),
                name="workflow_template_platform_key_version_unique",
            ),
            models.UniqueConstraint(
                fields=["team", "template_key"],
                condition=models.Q(is_latest=True, team__isnull=False),
                name="workflow_template_team_one_latest",
            ),
            models.UniqueConstraint(
                fields=["template_key"],
                condition=models.Q(is_latest=True, team__isnull=True),
                name="workflow_template_platform_one_latest",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template_key} v{self.version}"

    @property
    def is_draft(self) -> bool:
        return self.status == TemplateStatus.DRAFT


class WorkflowStageBlueprint(models.Model):
    """One ordered stage of a template, as edited inline in the admin (mirror of ``stage_blueprints``)."""

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.CASCADE, related_name="stage_rows")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    required_role = models.ForeignKey(
        Role, on_delete=models.PROTECT, to_field="key", db_column="required_role", related_name="+"
    )
    sla_hours = models.DecimalField(max_digits=7, decimal_places=2)
    meaning = models.CharField(max_length=200)
    reject_meaning = models.CharField(max_length=200, default="Rejected")

    class Meta:
        db_table = "governance_workflow_stage_blueprints"
        ordering = ["template_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["template", "position"], name="stage_blueprint_position_unique"),
            models.UniqueConstraint(fields=["template", "name"], name="stage_blueprint_name_unique"),
            models.CheckConstraint(
                condition=models.Q(sla_hours__gt=0),
                name="stage_blueprint_sla_positive",
                violation_error_message="SLA hours must be greater than 0.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name}"


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk updates and deletes are refused: the rows are evidence. PostgreSQL triggers refuse them too."""

    def update(self, **kwargs):
        raise Conflict(f"{self.model._meta.verbose_name} rows are immutable.", code="immutable_record")

    def delete(self):
        raise Conflict(f"{self.model._meta.verbose_name} rows are immutable.", code="immutable_record")


class AppendOnlyModel(models.Model):
    """A row that may be inserted once and never changed or deleted (enforced here and by a database trigger)."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise Conflict(f"{self._meta.verbose_name} {self.pk} is immutable.", code="immutable_record")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise Conflict(f"{self._meta.verbose_name} {self.pk} is immutable.", code="immutable_record")


SNAPSHOT_FORMAT_VERSION = 3


class WorkflowTemplateSnapshot(AppendOnlyModel):
    """The immutable, hashed content of a template as it was published. Exports pin the snapshot they used.

    ``canonical_json`` holds ``{"template_key", "version", "name", "description", "stages": [{"name",
    "required_role", "sla_hours", "meaning"}], "permitted_roles", "sla_defaults": {"sla_hours",
    "escalate_after_hours"}, "retention_days"}``; from ``format_version`` 2 on it also holds ``"format_version"``
    and ``"team"`` (the owning team's slug, null for a platform template); from format 3 on every stage also holds
    ``"reject_meaning"``. ``content_sha256`` is the sha256 of exactly that text, so snapshots written in earlier
    formats keep their hashes (their stages reject with ``"Rejected"``). A snapshot belongs to the team of its
    template.
    """

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.PROTECT, related_name="snapshots")
    template_key = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    canonical_json = models.TextField()
    content_sha256 = models.CharField(max_length=64)
    format_version = models.PositiveSmallIntegerField(default=SNAPSHOT_FORMAT_VERSION)
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
    """Which template a team, or a protocol template inside a team, uses for new exports.

    Protocol beats team beats default. An assignment always names its team; the template is that team's own or a
    platform template, so nothing one team does can change another team's ladders.
    """

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.PROTECT, related_name="assignments")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    protocol_template_key = models.SlugField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        db_table = "execution_narrative_workflow_template_assignments"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team"],
                condition=models.Q(protocol_template_key=""),
                name="template_assignment_one_per_team",
                violation_error_message="This team already has a template assignment; edit that one instead.",
            ),
            models.UniqueConstraint(
                fields=["team", "protocol_template_key"],
                condition=~models.Q(protocol_template_key=""),
                name="template_assignment_one_per_team_protocol",
                violation_error_message="This protocol template already has an assignment in this team; edit that "
                "one instead.",
            ),
        ]

    def __str__(self) -> str:
        target = f"{self.protocol_template_key} in team {self.team_id}" if self.protocol_template_key else ""
        return f"{self.template} → {target or f'team {self.team_id}'}"


class GovernanceTemplateAuditLog(AppendOnlyModel):
    """What happened to templates, snapshots and assignments, and which snapshot each preview used.

    Each row is also written to the hash-chained ``AuditEvent`` trail; this table is the curated, queryable view
    an auditor reads ("which rules applied, who published them, who looked at them").
    """

    action = models.CharField(max_length=20, choices=TemplateAuditAction.choices)
    template = models.ForeignKey(
        WorkflowTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_logs"
    )
    snapshot = models.ForeignKey(
        WorkflowTemplateSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_logs"
    )
    template_key = models.SlugField(max_length=100, blank=True)
    template_version = models.PositiveIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    actor_username = models.CharField(max_length=150, blank=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    execution_id = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "governance_template_audit_logs"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["template_key", "-created_at"]),
            models.Index(fields=["action", "-created_at"]),
            models.Index(fields=["execution_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.template_key} v{self.template_version}"


class GovernanceBaseline(models.Model):
    """A reviewed reference result for a protocol template, proposed from one execution.

    Lifecycle: submitted → approved | rejected; approved → published (the current baseline of its team's protocol
    template, with the next version number); published → superseded (a newer one was published) or rolled_back.
    A superseded or rolled-back baseline can be reinstated as current by a rollback. At most one baseline per
    (team, protocol template) is current: a partial unique index guarantees it.
    """

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="baselines")
    # The execution it was proposed from: an id of the exports app, never resolved here (docs/architecture.md).
    execution_id = models.BigIntegerField(db_index=True)
    protocol_template_key = models.SlugField(max_length=100)
    version = models.PositiveIntegerField(null=True, blank=True)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=BaselineStatus.choices, default=BaselineStatus.SUBMITTED)
    is_current = models.BooleanField(default=False)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="baselines_to_review", blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rollback_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        db_table = "governance_baselines"
        ordering = ["team_id", "protocol_template_key", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "protocol_template_key"],
                condition=models.Q(is_current=True),
                name="governance_baseline_one_current",
            ),
            models.UniqueConstraint(
                fields=["team", "protocol_template_key", "version"],
                condition=models.Q(version__isnull=False),
                name="governance_baseline_version_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(is_current=False) | models.Q(status=BaselineStatus.PUBLISHED),
                name="governance_baseline_current_is_published",
            ),
        ]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        version = f" v{self.version}" if self.version else ""
        return f"{self.protocol_template_key}{version}: {self.title}"


class BaselineEventQuerySet(AppendOnlyQuerySet, TeamScopedQuerySet):  # type: ignore[override]
    pass


class GovernanceBaselineEvent(AppendOnlyModel):
    """One transition of a baseline, written by ``record_baseline_event`` (and chained into the audit trail)."""

    baseline = models.ForeignKey(GovernanceBaseline, on_delete=models.PROTECT, related_name="events")
    event_type = models.CharField(max_length=20, choices=BaselineEventType.choices)
    from_status = models.CharField(max_length=20, choices=BaselineStatus.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=BaselineStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    actor_username = models.CharField(max_length=150, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    TEAM_LOOKUP = "baseline__team"
    objects = BaselineEventQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        db_table = "governance_baseline_events"
        ordering = ["baseline_id", "id"]

    def __str__(self) -> str:
        return f"baseline {self.baseline_id}: {self.event_type}"


class LoginFailureCounter(models.Model):
    """Password checks that failed (or are still running) for one limiting key in one fixed time window.

    The key is ``address:<ip>`` or ``user-address:<sha256 of the casefolded username>:<ip>``. Rows are counted up
    with one atomic upsert per key; see governance/services/login_guard.py and docs/authentication.md.
    """

    key = models.CharField(max_length=200)
    window_start = models.BigIntegerField(help_text="Start of the window, in seconds since the Unix epoch.")
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "governance_login_failure_counters"
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="login_counter_key_window")]
        indexes = [models.Index(fields=["window_start"], name="login_counter_window_idx")]

    def __str__(self) -> str:
        return f"{self.key} @ {self.window_start}: {self.attempts}"


class FeedCursor(models.Model):
    """The database cursor store of the governance event feed (docs/feed.md): the audit-chain sequence of the last
    row a sink accepted, advanced only after it accepted the batch."""

    name = models.SlugField(max_length=63, unique=True)
    cursor = models.BigIntegerField(default=0)
    rows = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.cursor}"


class ScheduledJobRun(models.Model):
    """The latest run of a scheduled job (``governance-feed``, ``retention``, …), one row per job, written by the
    job itself when a run ends; ``/metrics`` and the reports page read it (docs/operations.md)."""

    job = models.SlugField(max_length=63, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    outcome = models.CharField(max_length=20)
    rows = models.BigIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.job}: {self.outcome} at {self.finished_at:%Y-%m-%d %H:%M}"


class TrustedTimestamp(models.Model):
    """An RFC 3161 timestamp token over the exact bytes of one record (docs/trusted-time.md).

    The row is written, ``pending``, in the same transaction as its subject; the token is fetched afterwards
    (a TSA that is down never blocks signing or packaging) and stored as the TSA's whole ``TimeStampResp``, the
    form ``openssl ts -verify -in`` reads. ``subject_bytes`` are the bytes the token covers, kept so a verifier
    needs nothing else.
    """

    subject_type = models.CharField(max_length=20, choices=TimestampSubject.choices)
    subject_id = models.BigIntegerField()
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    subject_bytes = models.BinaryField()
    subject_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=TimestampStatus.choices, default=TimestampStatus.PENDING)
    response = models.BinaryField(null=True, blank=True)
    tsa_url = models.CharField(max_length=500, blank=True)
    gen_time = models.DateTimeField(null=True, blank=True)
    serial_number = models.CharField(max_length=80, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    granted_at = models.DateTimeField(null=True, blank=True)

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["subject_type", "subject_id"], name="trusted_timestamp_one_per_subject"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"timestamp of {self.subject_type} {self.subject_id} ({self.status})"


class TsaCertificate(models.Model):
    """A certificate seen in a granted token (the TSA's signer), published for offline verification."""

    sha256 = models.CharField(max_length=64, unique=True)
    subject = models.CharField(max_length=500)
    pem = models.TextField()
    first_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["first_seen_at", "id"]

    def __str__(self) -> str:
        return self.subject


class AuditCheckpoint(models.Model):
    """A signed statement of the audit chain's head at one moment (docs/trusted-time.md).

    ``statement`` is canonical JSON naming the head's sequence and hash; ``signature`` is the bundle signing
    key's Ed25519 signature over it, and a trusted timestamp over the same bytes dates it independently.
    """

    sequence = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    statement = models.BinaryField()
    key_id = models.CharField(max_length=64)
    public_key_pem = models.TextField()
    signature = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sequence", "id"]

    def __str__(self) -> str:
        return f"audit checkpoint at sequence {self.sequence}"
