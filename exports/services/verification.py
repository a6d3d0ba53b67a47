"""Every bundle verification leaves a record: ``verify_export`` now, scheduled fixity checks when they arrive.

Results are appended to the audit trail as ``narrative_export.artifact.verified`` (``/metrics`` counts the failed
ones as ``dossier_verify_failures_total{source}``; the governance event feed carries them). The payload holds only
codes and digests, never user-written text.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from exports.events import EventType
from exports.models import NarrativeExport
from governance.models import AuditEvent
from governance.services.audit import audit_record

SOURCE_VERIFY_EXPORT = "verify_export"
SOURCE_FIXITY = "fixity"


@transaction.atomic
def verification_record(
    *,
    source: str,
    ok: bool,
    problem_codes: Sequence[str] = (),
    export: NarrativeExport | None = None,
    archive_sha256: str = "",
    actor=None,
) -> AuditEvent:
    """Append one verification outcome (``source``: ``verify_export`` or ``fixity``) to the audit trail."""
    return audit_record(
        action=EventType.ARTIFACT_VERIFIED,
        actor=actor,
        obj=export,
        team_id=export.execution.team_id if export is not None else None,
        payload={
            "source": source,
            "ok": ok,
            "problems": sorted(set(problem_codes)),
            "archive_sha256": archive_sha256,
            **({"export_id": export.pk} if export is not None else {}),
        },
    )
