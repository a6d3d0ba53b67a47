from django.db import models

# Templates (governance) set it; artifacts and evidence carry it (docs/records-lifecycle.md).
from governance.choices import RetentionMode as RetentionMode


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
    APPROVAL_EXPIRED = "approval_expired", "Approval expired"
    ERASED = "erased", "Erased"


# Every legal change of an export's status, ``{from: {to, ...}}`` (docs/architecture.md, "The export lifecycle").
# ``export_transition`` refuses anything else. A new status arrives with the feature that needs it: add its row
# and the arrows into it here, and the table's tests name what changed.
EXPORT_TRANSITIONS: dict[str, frozenset[str]] = {
    ExportStatus.AWAITING_APPROVAL: frozenset(
        {
            ExportStatus.APPROVED,  # last signature
            ExportStatus.REJECTED,
            ExportStatus.QUEUED,  # re-queue
            ExportStatus.APPROVAL_EXPIRED,  # the ladder stayed open past the template's limit
            ExportStatus.ERASED,
        }
    ),
    ExportStatus.APPROVED: frozenset(
        {ExportStatus.QUEUED, ExportStatus.AWAITING_APPROVAL, ExportStatus.ERASED}  # dispatch, reset, erasure
    ),
    ExportStatus.REJECTED: frozenset({ExportStatus.ERASED}),  # a new export version starts a new ladder
    ExportStatus.QUEUED: frozenset(
        {ExportStatus.PACKAGING, ExportStatus.AWAITING_APPROVAL}  # worker starts; a gate blocks or a reset
    ),
    ExportStatus.PACKAGING: frozenset(
        {
            ExportStatus.PACKAGING,  # a redelivered task takes over from a lost worker
            ExportStatus.PACKAGED,
            ExportStatus.QUEUED,  # a transient error, retried
            ExportStatus.FAILED,
            ExportStatus.AWAITING_APPROVAL,  # a gate refuses at publish time (a reset during the build)
        }
    ),
    ExportStatus.PACKAGED: frozenset({ExportStatus.EXPIRED, ExportStatus.ERASED}),  # retention purges the artifact
    ExportStatus.FAILED: frozenset(
        {ExportStatus.QUEUED, ExportStatus.AWAITING_APPROVAL, ExportStatus.ERASED}  # re-queue, reset, erasure
    ),
    ExportStatus.EXPIRED: frozenset({ExportStatus.ERASED}),
    ExportStatus.APPROVAL_EXPIRED: frozenset({ExportStatus.ERASED}),  # a new export version starts a new ladder
    # Team erasure reaches ``erased`` from every status but the packaging worker's own (``queued``, ``packaging``).
    ExportStatus.ERASED: frozenset(),
}


def export_transition_allowed(current: str, to: str) -> bool:
    return to in EXPORT_TRANSITIONS.get(current, frozenset())


# Statuses from which an export may be (re-)queued for packaging by a person or the guardrail (queueing a queued
# export sends the task again). ``packaging`` → ``queued`` is the worker's own retry, not a re-queue.
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


class LegalHoldScope(models.TextChoices):
    TEAM = "team", "Team: every record of the team"
    EXPORT = "export", "Export: one export version"


class RetentionCategory(models.TextChoices):
    """What ``enforce_retention`` purges, reported per category (docs/records-lifecycle.md)."""

    ARTIFACT = "artifact", "Bundle artifact"
    EVIDENCE = "evidence", "Evidence file"


class RetentionRule(models.TextChoices):
    """Why an item became due."""

    RETAIN_UNTIL = "retain_until", "Its retain-until date passed"
    KEEP_VERSIONS = "keep_versions", "Older than the newest versions the template keeps"


class ArtifactCompression(models.TextChoices):
    ZSTD = "zstd", "zstd (.tar.zst)"
    GZIP = "gzip", "gzip (.tar.gz)"


class SigningKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class TeamDataExportStatus(models.TextChoices):
    """A team data export requested through the API (docs/team-data.md)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    ERASED = "erased", "Erased with the team's content"


class StorageTier(models.TextChoices):
    """Where a stored object sits by age (docs/storage-tiers-and-fixity.md); every tier reads at once."""

    HOT = "hot", "Hot"
    WARM = "warm", "Warm"
    COLD = "cold", "Cold"


class FixityStatus(models.TextChoices):
    """The outcome of the last fixity check of a stored object (docs/storage-tiers-and-fixity.md)."""

    UNCHECKED = "unchecked", "Not checked yet"
    INTACT = "intact", "Intact"
    FAILED = "failed", "Failed"
