"""Trusted timestamps of packaged bundles, as the API and the export page serve them (docs/trusted-time.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from config.errors import NotFound
from exports.models import ExportArtifact, NarrativeExport
from governance.choices import TimestampStatus, TimestampSubject
from governance.models import TrustedTimestamp
from governance.services.timestamps import timestamp_for, timestamps_enabled, timestamps_for


@dataclass(frozen=True)
class TrustedTime:
    """What the export page shows: whether trusted time is on, the bundle's token, and each signature's."""

    enabled: bool
    bundle: TrustedTimestamp | None = None
    signatures: dict[int, TrustedTimestamp] = field(default_factory=dict)


def export_trusted_time(export: NarrativeExport, signature_ids) -> TrustedTime:
    artifact = ExportArtifact.objects.filter(export=export).only("id").first()
    return TrustedTime(
        enabled=timestamps_enabled(),
        bundle=timestamp_for(TimestampSubject.BUNDLE, artifact.pk) if artifact else None,
        signatures=timestamps_for(TimestampSubject.SIGNATURE, signature_ids),
    )


def artifact_timestamp_reply(*, export: NarrativeExport) -> tuple[ExportArtifact, bytes]:
    """The RFC 3161 reply over the bundle's ``tagmanifest-sha512.txt``. 404 ``artifact_not_found`` before
    packaging, ``timestamp_not_found`` when none was requested (trusted time off at packaging), and
    ``timestamp_pending`` while the TSA has not answered yet."""
    artifact = ExportArtifact.objects.filter(export=export).first()
    if artifact is None:
        raise NotFound(f"Export {export.pk} has no packaged bundle yet.", code="artifact_not_found")
    row = timestamp_for(TimestampSubject.BUNDLE, artifact.pk)
    if row is None:
        raise NotFound(
            "No trusted timestamp was requested for this bundle: trusted time was off when it was packaged.",
            code="timestamp_not_found",
        )
    if row.status != TimestampStatus.GRANTED or row.response is None:
        raise NotFound(
            "The trusted timestamp of this bundle has not arrived yet; it is fetched again until the "
            "time-stamping authority answers.",
            code="timestamp_pending",
            details={"attempts": row.attempts, "requested_at": row.created_at.isoformat()},
        )
    return artifact, bytes(row.response)
