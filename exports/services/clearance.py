"""Clearance checks on exports (docs/clearance.md): reading an export's bundle or signing it needs a clearance at
or above the export's classification in its team. Every refusal is recorded as ``narrative_export.export_denied``
(timeline and audit trail) and answered 403 ``clearance_insufficient``."""

from __future__ import annotations

from django.db import transaction

from config.errors import PermissionDenied
from exports.events import EventType
from exports.models import NarrativeExport
from exports.services.lifecycle import export_lifecycle_record
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


def export_clearance_withheld(*, exports, user, action: str) -> set[int]:
    """The ids among ``exports`` whose content ``user`` may not read (metadata only, docs/clearance.md); each is
    recorded as a refusal with ``action`` (``detail`` or ``list``)."""
    levels: dict[int, str] = {}
    withheld: set[int] = set()
    for export in exports:
        team_id = export.execution.team_id
        if team_id not in levels:
            levels[team_id] = clearance_level(user=user, team_id=team_id)
        if not clearance_covers(levels[team_id], export.classification):
            _denied(export=export, user=user, action=action, level=levels[team_id])
            withheld.add(export.pk)
    return withheld
