"""Every event type the server writes to an execution's timeline or to the audit trail, in one registry.

Writers (ladders, packaging, downloads, previews) and readers (metrics, analytics, the event feed) import these
names instead of spelling the strings, so renaming one is one change that every reader follows. The exact
strings are part of the contract operators and BI query (docs/exports.md, docs/feed.md, docs/architecture.md).
"""

from django.db import models


class EventType(models.TextChoices):
    """The codes, and the labels pages show for them (config/labels.py reads these)."""

    EXECUTION_CREATED = "execution.created", "Execution created"
    EXECUTION_EVENTS_APPENDED = "execution.events_appended", "Events added"
    EXECUTION_OVERRIDE = "execution.override", "Override"
    EXECUTION_OVERRIDE_RECORDED = "execution.override_recorded", "Override recorded"
    EXECUTION_COACHING_NOTE = "execution.coaching_note", "Coaching note"
    EXECUTION_COACHING_NOTE_RECORDED = "execution.coaching_note_recorded", "Coaching note recorded"

    EXPORT_CREATED = "narrative_export.created", "Export created"
    EXPORT_SNAPSHOT_BACKFILLED = "narrative_export.template_snapshot_backfilled", "Template snapshot recorded"
    EXPORT_REPLAYED = "narrative_export.replayed", "Bundle replayed"
    EXPORT_ERASED = "narrative_export.erased", "Content erased with the team's"

    STAGE_STARTED = "narrative_export.approval.stage_started", "Stage started"
    STAGE_COMPLETED = "narrative_export.approval.stage_completed", "Stage signed"
    APPROVAL_FINALIZED = "narrative_export.approval.finalized", "Ladder approved"
    APPROVAL_REJECTED = "narrative_export.approval.rejected", "Export rejected"
    STAGE_DELEGATED = "narrative_export.approval.stage_delegated", "Stage delegated"
    STAGE_RESET = "narrative_export.approval.stage_reset", "Stage reset"
    STAGE_OVERDUE = "narrative_export.approval.stage_overdue", "Stage overdue"
    STAGE_ESCALATED = "narrative_export.approval.stage_escalated", "Stage escalated"

    PACKAGING_AWAITING_APPROVAL = "narrative_export.packaging.awaiting_approval", "Packaging waits for approval"
    PACKAGING_QUEUED = "narrative_export.packaging.queued", "Queued for packaging"
    PACKAGING_STARTED = "narrative_export.packaging.started", "Packaging started"
    PACKAGING_RETRYING = "narrative_export.packaging.retrying", "Packaging will retry"
    PACKAGING_FAILED = "narrative_export.packaging.failed", "Packaging failed"
    PACKAGING_COMPLETED = "narrative_export.packaging.completed", "Bundle packaged"
    PACKAGING_REDISPATCHED = "narrative_export.packaging.redispatched", "Packaging dispatched again"
    PACKAGING_TAKEN_OVER = "narrative_export.packaging.taken_over", "Packaging taken over from a lost worker"

    ARTIFACT_DOWNLOADED = "narrative_export.artifact.downloaded", "Bundle downloaded"
    ARTIFACT_EXPIRED = "narrative_export.artifact.expired", "Bundle expired"
    ARTIFACT_INTEGRITY_FAILED = "narrative_export.artifact.integrity_failed", "Bundle failed its integrity check"
    ARTIFACT_VERIFIED = "narrative_export.artifact.verified", "Bundle verified"
    ARTIFACT_DECRYPTION_FAILED = "narrative_export.artifact.decryption_failed", "Stored bundle did not decrypt"
    STORAGE_TIER_CHANGED = "narrative_export.storage.tier_changed", "Storage tier changed"
    EXPORT_DENIED = "narrative_export.export_denied", "Access denied above clearance"
    EXPORT_RELABELLED = "narrative_export.relabelled", "Classification changed"
    EVIDENCE_RELABELLED = "execution.evidence_relabelled", "Evidence classification changed"

    APPROVAL_EXPIRED = "narrative_export.approval.expired", "Ladder expired unfinished"

    LEGAL_HOLD_PLACED = "governance.legal_hold.placed", "Legal hold placed"
    LEGAL_HOLD_RELEASED = "governance.legal_hold.released", "Legal hold released"
    RETENTION_EXTENDED = "narrative_export.retention.extended", "Retention extended"
    RETENTION_SHORTENED = "narrative_export.retention.shortened", "Retention shortened"
    RETENTION_PURGED = "narrative_export.retention.purged", "Bundle purged by retention"
    EVIDENCE_PURGED = "execution.evidence_purged", "Evidence file purged by retention"

    SIGNER_CERTIFIED = "governance.signer.certified", "Signer certified the electronic signature"
    AUDIT_REVIEW_OPENED = "governance.audit_review.opened", "Audit-trail review opened"
    AUDIT_REVIEW_COMPLETED = "governance.audit_review.completed", "Audit-trail review signed"

    PREVIEW_SUMMARY = "governance.preview.summary", "Export previewed"
    TEAM_DATA_EXPORT_REQUESTED = "governance.team_data.export_requested", "Team data export requested"
    TEAM_DATA_EXPORTED = "governance.team_data.exported", "Team data exported"
    TEAM_DATA_EXPORT_FAILED = "governance.team_data.export_failed", "Team data export failed"
    TEAM_DATA_DOWNLOADED = "governance.team_data.downloaded", "Team data export downloaded"
    TEAM_ERASURE_PLANNED = "governance.team_data.erasure_planned", "Team erasure planned (dry run)"
    TEAM_ERASED = "governance.team_data.erased", "Team content erased"
    ESCALATION_RECORDED = "governance.escalation.recorded", "Escalation outcome recorded"
