"""Whether legal holds cover a team or an export (docs/records-lifecycle.md).

Retention, expiry and erasure ask these before they touch anything: an active hold (not released) on the export
itself or on its team overrides every rule. Each function is one query whatever the number of ids asked about.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from exports.models import LegalHold, NarrativeExport


def active_holds_for_team(team_id: int) -> QuerySet[LegalHold]:
    """Every active hold of the team, team-scoped and export-scoped, newest first."""
    return LegalHold.objects.active().filter(team_id=team_id).select_related("export", "placed_by")


def team_hold_active(team_id: int) -> bool:
    """Whether a team-scoped hold covers every record of the team."""
    return LegalHold.objects.active().filter(team_id=team_id, export__isnull=True).exists()


def export_held(export: NarrativeExport) -> bool:
    """Whether an active hold covers this export: one on the export itself or one on its whole team."""
    team_id = NarrativeExport.objects.filter(pk=export.pk).values("execution__team_id")
    return (
        LegalHold.objects.active().filter(Q(export_id=export.pk) | Q(export__isnull=True, team_id__in=team_id)).exists()
    )


def held_export_ids(export_ids: Iterable[int]) -> set[int]:
    """The ids among ``export_ids`` that an active hold covers (export-scoped, or through their team)."""
    ids = list(export_ids)
    if not ids:
        return set()
    held_teams = LegalHold.objects.active().filter(export__isnull=True).values("team_id")
    held_exports = LegalHold.objects.active().filter(export__isnull=False).values("export_id")
    return set(
        NarrativeExport.objects.filter(pk__in=ids)
        .filter(Q(execution__team_id__in=held_teams) | Q(pk__in=held_exports))
        .values_list("pk", flat=True)
    )
