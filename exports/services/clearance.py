"""Clearance checks on exports (docs/clearance.md): reading an export's bundle or signing it needs a clearance at
or above the export's classification in its team. Every refusal is recorded as ``narrative_export.export_denied``
(timeline and audit trail) and answered 403 ``clearance_insufficient``."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from config.errors import PermissionDenied
from exports.events import EventType
from exports.models import Execution, ExportAttachment, NarrativeExport
from exports.services.lifecycle import export_lifecycle_record
from exports.withholding import manifest_withholding, narrative_withholding
from governance.choices import ClearancePolicy
from governance.models import Team
from governance.services.clearance import clearance_covers, clearance_level

DENIED_EVENT = EventType.EXPORT_DENIED


class ClearanceInsufficient(PermissionDenied):
    code = "clearance_insufficient"
    default_message = "Your clearance in this team is below the export's classification."


def export_clearance_allows(*, export: NarrativeExport, user) -> bool:
    return clearance_covers(clearance_level(user=user, team_id=export.execution.team_id), export.classification)


@transaction.atomic
def _denied(*, export: NarrativeExport, user, action: str, level: str) -> None:
    export_lifecycle_record(
        export=export,
        event_type=DENIED_EVENT,
        actor=user,
        payload={"action": action, "classification": export.classification, "clearance": level},
    )


def export_clearance_record_denial(*, export: NarrativeExport, user, action: str) -> None:
    """Record a refusal that is answered with less rather than with an error (a detail page without the narrative)."""
    _denied(export=export, user=user, action=action, level=clearance_level(user=user, team_id=export.execution.team_id))


def export_clearance_require(*, export: NarrativeExport, user, action: str) -> None:
    """Refuse (and record the refusal) unless ``user``'s clearance covers ``export``; ``action`` names what was
    attempted: ``download``, ``signed_link``, ``link``, ``sign``."""
    level = clearance_level(user=user, team_id=export.execution.team_id)
    if clearance_covers(level, export.classification):
        return
    _denied(export=export, user=user, action=action, level=level)
    raise ClearanceInsufficient(
        f"Export {export.pk} is classified {export.classification}; your clearance in this team is {level}.",
        details={"classification": export.classification, "clearance": level},
    )


@dataclass(frozen=True)
class ReaderView:
    """How much of an export above their clearance a reader sees: nothing but metadata (``deny``, or ``redact``
    when the export's own label is what exceeds the clearance), or everything but the evidence in ``withheld``
    (``redact``: ``(kind, id)`` -> label)."""

    metadata_only: bool
    withheld: dict[tuple[str, str], str] = field(default_factory=dict)

    def narrative(self, export: NarrativeExport) -> str | None:
        return None if self.metadata_only else narrative_withholding(export.narrative_markdown, self.withheld)

    def manifest(self, manifest) -> list[dict] | None:
        return None if self.metadata_only else manifest_withholding(manifest, self.withheld)


def _evidence_above(*, export: NarrativeExport, level: str) -> dict[tuple[str, str], str]:
    labels = ExportAttachment.objects.filter(export=export, evidence__isnull=False).values_list(
        "kind", "evidence_id", "evidence__classification"
    )
    return {(kind, str(pk)): label for kind, pk, label in labels if not clearance_covers(level, label)}


def export_reader_views(*, exports, user, action: str) -> dict[int, ReaderView]:
    """What ``user`` may see of those ``exports`` above their clearance, by export id (exports they may read in
    full are absent). Each one is recorded as a refusal with ``action`` (``detail``, ``list``, ...)."""
    exports = list(exports)
    placed = Execution.objects.filter(pk__in={export.execution_id for export in exports})
    teams: dict[int, tuple[int, str]] = {
        pk: (team_id, policy) for pk, team_id, policy in placed.values_list("pk", "team_id", "team__clearance_policy")
    }
    levels: dict[int, str] = {}
    views: dict[int, ReaderView] = {}
    for export in exports:  # one query for the executions and one clearance per team, whatever the count
        team_id, policy = teams[export.execution_id]
        if team_id not in levels:
            levels[team_id] = clearance_level(user=user, team_id=team_id)
        level = levels[team_id]
        if clearance_covers(level, export.classification):
            continue
        _denied(export=export, user=user, action=action, level=level)
        withheld = _evidence_above(export=export, level=level) if policy == ClearancePolicy.REDACT else {}
        views[export.pk] = ReaderView(metadata_only=not withheld, withheld=withheld)
    return views


@dataclass(frozen=True)
class PreviewWithholding:
    """What a reader may see of a narrative previewed from ``evidence`` rows (docs/clearance.md)."""

    markdown: str
    manifest: list[dict]
    withheld: int
    policy: str
    clearance: str


def preview_withholding(*, markdown: str, manifest: list[dict], evidence, user, team_id: int) -> PreviewWithholding:
    """A preview above the reader's clearance: under ``deny`` no narrative and no manifest; under ``redact`` the
    evidence above it replaced by a marker. Nothing is stored, so nothing is recorded as a refusal."""
    level = clearance_level(user=user, team_id=team_id)
    withheld = {
        (str(row.kind), str(row.pk)): row.classification
        for row in evidence
        if not clearance_covers(level, row.classification)
    }
    policy = Team.objects.filter(pk=team_id).values_list("clearance_policy", flat=True).first() or ClearancePolicy.DENY
    if not withheld:
        return PreviewWithholding(markdown, manifest, 0, policy, level)
    if policy != ClearancePolicy.REDACT:
        return PreviewWithholding("", [], len(withheld), policy, level)
    shown = narrative_withholding(markdown, withheld)
    return PreviewWithholding(shown, manifest_withholding(manifest, withheld), len(withheld), policy, level)
