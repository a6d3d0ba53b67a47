from django.db import models


class RoleKey(models.TextChoices):
    SCIENTIST = "scientist", "Scientist"
    REVIEWER = "reviewer", "Reviewer"
    QA_APPROVER = "qa_approver", "QA approver"
    PI = "pi", "Principal investigator"
    OPERATOR = "operator", "Operator"
    COMPLIANCE = "compliance", "Compliance"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Administrator"


class Classification(models.TextChoices):
    PUBLIC = "Public", "Public"
    INTERNAL = "Internal", "Internal"
    CONFIDENTIAL = "Confidential", "Confidential"
    RESTRICTED = "Restricted", "Restricted"


# Lowest to highest: a user sees what is at or below their clearance (docs/clearance.md).
CLASSIFICATION_ORDER = (Classification.PUBLIC, Classification.INTERNAL, Classification.CONFIDENTIAL,
                        Classification.RESTRICTED)  # fmt: skip
DEFAULT_CLEARANCE = Classification.INTERNAL


class ClearancePolicy(models.TextChoices):
    """What a team does with exports above a member's clearance."""

    DENY = "deny", "Deny: metadata only"
    REDACT = "redact", "Redact: evidence above the clearance replaced by a marker"


class TemplateStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class TemplateAuditAction(models.TextChoices):
    CREATED = "created", "Created"
    FORKED = "forked", "Forked"
    UPDATED = "updated", "Updated"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"
    ASSIGNED = "assigned", "Assigned"
    UNASSIGNED = "unassigned", "Unassigned"
    PREVIEWED = "previewed", "Previewed"
    REDACTION_CHANGED = "redaction_changed", "Redaction switched on or off"


class BaselineStatus(models.TextChoices):
    SUBMITTED = "submitted", "Submitted for review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    PUBLISHED = "published", "Published"
    SUPERSEDED = "superseded", "Superseded"
    ROLLED_BACK = "rolled_back", "Rolled back"


class BaselineEventType(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    PUBLISHED = "published", "Published"
    SUPERSEDED = "superseded", "Superseded"
    ROLLED_BACK = "rolled_back", "Rolled back"
    REINSTATED = "reinstated", "Reinstated"


class TimestampSubject(models.TextChoices):
    """What a trusted timestamp covers (docs/trusted-time.md)."""

    SIGNATURE = "signature", "Signature record"
    BUNDLE = "bundle", "Bundle tag manifest"
    AUDIT_CHECKPOINT = "audit_checkpoint", "Audit-chain checkpoint"


class TimestampStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    GRANTED = "granted", "Granted"
