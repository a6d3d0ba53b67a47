"""Approval ladders: ordered stages signed off one after the other, with an append-only record of every action.

Nothing here is overwritten in place that an auditor would need later: each decision is an ``ApprovalSignature``
(never deleted; a reset marks it superseded) and each action on a ladder appends an ``ApprovalHistory`` row.
On PostgreSQL triggers refuse deleting signatures and changing or deleting history rows.
"""

from datetime import UTC

from django.conf import settings
from django.db import models
from django.db.models import Q

from approvals.choices import (
    DECISION_OUTCOMES,
    AuditReviewStatus,
    Decision,
    EscalationOutcome,
    HistoryAction,
    LadderStatus,
    StageStatus,
)
from exports.models import NarrativeExport
from governance.models import Team, WorkflowTemplateSnapshot
from governance.querysets import TeamScopedQuerySet


class ApprovalLadder(models.Model):
    """The sign-off ladder of one export version, instantiated from the template snapshot the export pinned."""

    export = models.OneToOneField(NarrativeExport, on_delete=models.PROTECT, related_name="ladder")
    template_snapshot = models.ForeignKey(
        WorkflowTemplateSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=LadderStatus.choices, default=LadderStatus.IN_PROGRESS)
    iteration = models.PositiveIntegerField(default=1, help_text="Bumped by every reset.")
    escalate_after_hours = models.PositiveIntegerField(default=24)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)

    TEAM_LOOKUP = "export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"ladder of export {self.export_id} ({self.status})"


class ApprovalStage(models.Model):
    ladder = models.ForeignKey(ApprovalLadder, on_delete=models.PROTECT, related_name="stages")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    required_role = models.SlugField(max_length=50)
    meaning = models.CharField(max_length=200, blank=True, help_text="The default meaning of an approval here.")
    reject_meaning = models.CharField(
        max_length=200, default="Rejected", help_text="The default meaning of a rejection here."
    )
    sla_hours = models.PositiveIntegerField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=StageStatus.choices, default=StageStatus.PENDING)
    iteration = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    escalate_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    overdue_at = models.DateTimeField(null=True, blank=True, help_text="Set when the monitor found it past due.")
    escalated_at = models.DateTimeField(null=True, blank=True, help_text="Set when the monitor escalated it.")

    TEAM_LOOKUP = "ladder__export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["ladder_id", "index"]
        constraints = [models.UniqueConstraint(fields=["ladder", "index"], name="approval_stage_index_unique")]
        indexes = [
            models.Index(
                fields=["due_at"],
                name="approval_stage_overdue_scan",
                condition=Q(status=StageStatus.IN_PROGRESS, overdue_at__isnull=True),
            ),
            models.Index(
                fields=["escalate_at"],
                name="approval_stage_escalate_scan",
                condition=Q(status=StageStatus.IN_PROGRESS, escalated_at__isnull=True),
            ),
            models.Index(fields=["status", "required_role"]),
        ]

    def __str__(self) -> str:
        return f"stage {self.index + 1} {self.name} ({self.status})"


class ApprovalSignature(models.Model):
    """An electronic signature: who, printed name, when (UTC), what it means, and the digest it binds to."""

    ladder = models.ForeignKey(ApprovalLadder, on_delete=models.PROTECT, related_name="signatures")
    stage = models.ForeignKey(ApprovalStage, on_delete=models.PROTECT, related_name="signatures")
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signer_username = models.CharField(max_length=150)
    printed_name = models.CharField(max_length=300)
    signed_as = models.CharField(max_length=50, help_text="The role held, or 'assignee' for a delegate.")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    meaning = models.CharField(max_length=200)
    comment = models.TextField(blank=True)
    signed_at = models.DateTimeField()
    narrative_digest = models.CharField(max_length=64)
    stage_index = models.PositiveSmallIntegerField()
    stage_name = models.CharField(max_length=200)
    required_role = models.SlugField(max_length=50)
    iteration = models.PositiveIntegerField()
    superseded = models.BooleanField(default=False)
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_reason = models.TextField(blank=True)

    TEAM_LOOKUP = "ladder__export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["ladder_id", "signed_at", "id"]
        constraints = [
            # At most one live signature per stage: the row lock makes the second signer see a stale stage,
            # and this makes it impossible even for code that forgets the lock.
            models.UniqueConstraint(
                fields=["stage"], condition=Q(superseded=False), name="approval_signature_one_live_per_stage"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.signer_username} on stage {self.stage_index + 1}"

    @property
    def outcome_label(self) -> str:
        return DECISION_OUTCOMES.get(self.decision, self.decision)


class ApprovalHistory(models.Model):
    """One row per action on a ladder: who, what, from whom to whom, why and when. Append-only."""

    ladder = models.ForeignKey(ApprovalLadder, on_delete=models.PROTECT, related_name="history")
    stage = models.ForeignKey(ApprovalStage, null=True, blank=True, on_delete=models.PROTECT, related_name="history")
    action = models.CharField(max_length=30, choices=HistoryAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    from_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True)
    iteration = models.PositiveIntegerField()
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    TEAM_LOOKUP = "ladder__export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["ladder_id", "id"]
        verbose_name_plural = "approval history"

    def __str__(self) -> str:
        return f"{self.action} on ladder {self.ladder_id}"


class SignatureAttempt(models.Model):
    """Every signing attempt's password check, kept to count failures for the lockout.

    ``succeeded`` is None while the check runs: the row is the attempt's reserved slot and counts as a failure
    until the check says otherwise (approvals/services/signing.py). Attempts refused while locked are kept with
    ``refused_locked`` and never counted.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    export = models.ForeignKey(NarrativeExport, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    succeeded = models.BooleanField(null=True)
    refused_locked = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "succeeded", "created_at"])]


class SigningGuard(models.Model):
    """One row per signer, locked (``SELECT ... FOR UPDATE``) while a signing attempt is admitted or recorded, so
    that counting attempts against the lockout is never check-then-act across processes."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+")


class SlaMonitorState(models.Model):
    """The single row whose lock decides which monitor run checks enforcement, and which cycle it is."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    cycle = models.PositiveIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)


class EnforcementObservation(models.Model):
    """An enforcement inconsistency seen by the monitor; reported once it is seen in two consecutive cycles."""

    export = models.ForeignKey(NarrativeExport, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=50)
    detail = models.JSONField(default=dict)
    first_cycle = models.PositiveIntegerField()
    last_cycle = models.PositiveIntegerField()
    first_seen_at = models.DateTimeField()
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["export", "kind"], name="enforcement_observation_unique"),
        ]


class StageEscalation(models.Model):
    """An operator's record of chasing an overdue stage: whom they contacted, what came of it and when to look
    again. Appended only; the latest one per stage is what the overdue queue shows."""

    ladder = models.ForeignKey(ApprovalLadder, on_delete=models.PROTECT, related_name="escalations")
    stage = models.ForeignKey(ApprovalStage, on_delete=models.PROTECT, related_name="escalations")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    contacted = models.CharField(max_length=300, help_text="Who was contacted, and how.")
    outcome = models.CharField(max_length=30, choices=EscalationOutcome.choices)
    next_check_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField()
    event_sequence = models.BigIntegerField(help_text="The execution timeline entry that records it.")

    TEAM_LOOKUP = "ladder__export__execution__team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["stage", "-recorded_at", "-id"], name="stage_escalation_latest")]

    def __str__(self) -> str:
        return f"escalation of stage {self.stage_id}: {self.outcome}"


class SignatureCertification(models.Model):
    """A signer's certification that their electronic signature is the legally binding equivalent of their
    handwritten one (21 CFR 11.100(c)), given with their password before their first signature. Appended only:
    certifying again (a new statement version) adds a row."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    statement_version = models.CharField(max_length=40)
    statement_digest = models.CharField(max_length=64, help_text="sha256 of the statement text certified.")
    certified_at = models.DateTimeField()
    client_address = models.CharField(max_length=45, blank=True)

    class Meta:
        ordering = ["-certified_at", "-id"]
        indexes = [models.Index(fields=["user", "-certified_at"], name="signature_certification_user")]


class SigningSession(models.Model):
    """When a signer last signed in one session (an API token or a browser session), keyed by a digest of the
    token's or session's identity: the first signature of a continuous session needs both signature components
    (21 CFR 11.200(a)(1)), later ones the password (docs/part11.md)."""

    key = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_signed_at = models.DateTimeField()


class AuditReview(models.Model):
    """The periodic review of one team's audit trail over one period (EU GMP Annex 11 section 9), assigned to a
    member who acted in none of the period's events and completed with an electronic signature."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(help_text="Exclusive.")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=AuditReviewStatus.choices, default=AuditReviewStatus.OPEN)
    opened_at = models.DateTimeField()
    due_at = models.DateTimeField()
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    printed_name = models.CharField(max_length=300, blank=True)
    meaning = models.CharField(max_length=200, blank=True)
    comment = models.TextField(blank=True)
    events_total = models.PositiveIntegerField(default=0)
    exceptions_total = models.PositiveIntegerField(default=0)
    events_digest = models.CharField(max_length=64, blank=True, help_text="sha256 over the reviewed rows' hashes.")

    TEAM_LOOKUP = "team"
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-period_start", "team_id"]
        constraints = [models.UniqueConstraint(fields=["team", "period_start"], name="audit_review_team_period")]
        indexes = [models.Index(fields=["status", "due_at"], name="audit_review_open_due")]

    def __str__(self) -> str:
        return f"audit review {self.pk} of team {self.team_id} from {self.period_start:%Y-%m-%d}"

    @property
    def period_label(self) -> str:
        """The reviewed month as a UTC calendar month, whatever zone the page is shown in."""
        return f"{self.period_start.astimezone(UTC):%Y-%m}"
