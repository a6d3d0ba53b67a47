from django.db import models


class ExecutionStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    ABORTED = "aborted", "Aborted"


class EvidenceKind(models.TextChoices):
    FILE = "file", "File"
    NOTEBOOK_ENTRY = "notebook_entry", "Notebook entry"
    ANALYTICS_SNAPSHOT = "analytics_snapshot", "Analytics snapshot"
    QC_METRIC = "qc_metric", "QC metric"
    REMEDIATION_REPORT = "remediation_report", "Remediation report"
    TIMELINE_EVENT = "timeline_event", "Timeline event"


# Kinds whose content is structured JSON posted through /api/data/evidence.
JSON_EVIDENCE_KINDS = frozenset(
    {EvidenceKind.ANALYTICS_SNAPSHOT, EvidenceKind.QC_METRIC, EvidenceKind.REMEDIATION_REPORT}
)

# Event types the server writes itself; clients may not append them.
RESERVED_EVENT_PREFIXES = ("narrative_export.", "governance.", "execution.")


class ExportStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    QUEUED = "queued", "Queued"
    PACKAGING = "packaging", "Packaging"
    PACKAGED = "packaged", "Packaged"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


# Statuses from which an export may be (re-)queued for packaging.
QUEUEABLE_EXPORT_STATUSES = frozenset(
    {ExportStatus.AWAITING_APPROVAL, ExportStatus.APPROVED, ExportStatus.QUEUED, ExportStatus.FAILED}
)


class PackagingRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    RETRYING = "retrying", "Failed, will retry"
    BLOCKED = "blocked", "Blocked by a packaging gate"
    ABANDONED = "abandoned", "Abandoned (worker lost)"
    SKIPPED = "skipped", "Skipped (already packaged)"


class ArtifactCompression(models.TextChoices):
    ZSTD = "zstd", "zstd (.tar.zst)"
    GZIP = "gzip", "gzip (.tar.gz)"


class SigningKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
