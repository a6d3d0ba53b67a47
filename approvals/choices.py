from django.db import models

from exports.choices import ExportStatus
from governance.choices import RoleKey


class LadderStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired unfinished"


class StageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in_progress", "In progress"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


OPEN_STAGE_STATUSES = frozenset({StageStatus.PENDING, StageStatus.IN_PROGRESS})


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


# What a signature did, in the past tense ("approved", "rejected"), for records and messages.
DECISION_OUTCOMES: dict[str, str] = {Decision.APPROVE: "approved", Decision.REJECT: "rejected"}


class HistoryAction(models.TextChoices):
    """Every action on a ladder appends one history row with one of these."""

    STAGE_STARTED = "stage_started", "Stage started"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    DELEGATED = "delegated", "Delegated"
    RESET = "reset", "Reset"
    RETURNED_TO_PENDING = "returned_to_pending", "Returned to pending"
    SIGNATURE_SUPERSEDED = "signature_superseded", "Signature superseded"
    OVERDUE = "overdue", "Marked overdue"
    ESCALATED = "escalated", "Escalated"
    FINALIZED = "finalized", "Ladder finalized"
    EXPIRED = "expired", "Ladder expired unfinished"


class QueueStatus(models.TextChoices):
    """The ``status`` of an export's compact packaging queue state as the guardrail records it."""

    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    REJECTED = "rejected", "Rejected"
    NO_LADDER = "no_ladder", "No approval ladder"
    READY = "ready", "Ready to package"


BLOCKING_QUEUE_STATUSES = frozenset({QueueStatus.AWAITING_APPROVAL, QueueStatus.REJECTED, QueueStatus.NO_LADDER})


class EscalationOutcome(models.TextChoices):
    """What came of chasing an overdue stage (docs/escalations.md)."""

    ACKNOWLEDGED = "acknowledged", "Acknowledged: will sign"
    NO_RESPONSE = "no_response", "No response"
    DELEGATION_REQUESTED = "delegation_requested", "Asked to delegate"
    BLOCKED = "blocked", "Blocked: waiting on something else"
    DUE_DATE_AGREED = "due_date_agreed", "New date agreed"


# Besides the stage's own role holders and its assignee, these roles may delegate a stage or reset a ladder.
DELEGATE_ROLES = frozenset({RoleKey.OPERATOR, RoleKey.ADMIN, RoleKey.COMPLIANCE, RoleKey.PI})
RESET_ROLES = frozenset({RoleKey.ADMIN, RoleKey.COMPLIANCE, RoleKey.PI})
# Export statuses a reset can pull back to awaiting approval; later ones have already left the building.
RESETTABLE_EXPORT_STATUSES = frozenset(
    {ExportStatus.AWAITING_APPROVAL, ExportStatus.APPROVED, ExportStatus.QUEUED, ExportStatus.FAILED}
)


class AuditReviewStatus(models.TextChoices):
    """An audit-trail review of one team and period (docs/part11.md, "Audit-trail review")."""

    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"


# Team members who may review a team's audit trail (and be assigned its periodic review).
AUDIT_REVIEWER_ROLES = frozenset({RoleKey.COMPLIANCE, RoleKey.ADMIN})
