"""Whether legal holds cover a team or an export (docs/records-lifecycle.md).

Retention, expiry and erasure ask these before they touch anything: an active hold (not released) on the export
itself or on its team overrides every rule. Each function is one query whatever the number of ids asked about.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q, QuerySet

from config.errors import NotFound, PermissionDenied
from exports.filtersets import LegalHoldFilterSet
from exports.models import ExportAttachment, LegalHold, NarrativeExport
from exports.permissions import HOLD_READERS, require_team_role
from governance.filtersets import filtered
from governance.models import Membership
from governance.selectors.teams import user_holds_any_role


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


def export_held_q(*, export: str = "", team: str) -> Q:
    """A filter matching rows whose export (the lookup path ``export``; "" when the rows are exports) or whose team
    (the path ``team``) an active hold covers; ``~export_held_q(...)`` keeps what no hold covers. Subqueries, so a
    selection with it stays one query."""
    held_teams = LegalHold.objects.active().filter(export__isnull=True).values("team_id")
    held_exports = LegalHold.objects.active().filter(export__isnull=False).values("export_id")
    export_pk = f"{export}_id" if export else "pk"
    return Q(**{f"{team}_id__in": held_teams}) | Q(**{f"{export_pk}__in": held_exports})


def evidence_held_q() -> Q:
    """Evidence covered by a hold: its team is held, or an export that carries it is."""
    held_exports = LegalHold.objects.active().filter(export__isnull=False).values("export_id")
    carried = ExportAttachment.objects.filter(export_id__in=held_exports, evidence__isnull=False).values("evidence_id")
    held_teams = LegalHold.objects.active().filter(export__isnull=True).values("team_id")
    return Q(execution__team_id__in=held_teams) | Q(pk__in=carried)


def _reader_team_ids(user):
    return Membership.objects.filter(user=user, role__key__in=HOLD_READERS).values("team_id")


def legal_holds_for_user(*, user, filters: Any = None) -> QuerySet[LegalHold]:
    """Holds of the teams where ``user`` holds a reading role (``compliance``, ``admin``, ``auditor``; a superuser:
    of every team they belong to), newest first, filtered; 403 when the user holds none anywhere. A fixed number
    of queries whatever the page size."""
    superuser = getattr(user, "is_superuser", False)
    if not superuser and not user_holds_any_role(user=user, roles=HOLD_READERS):
        raise PermissionDenied(
            "You need one of the roles admin, auditor or compliance in a team to read its legal holds.",
            details={"required_roles": sorted(HOLD_READERS)},
        )
    qs = LegalHold.objects.visible_to(user).select_related("team", "export", "placed_by", "released_by")
    if not superuser:
        qs = qs.filter(team_id__in=_reader_team_ids(user))
    return filtered(LegalHoldFilterSet, filters, qs)


def legal_hold_get_for_user(*, user, hold_id: int) -> LegalHold:
    """One hold of the user's teams (404 otherwise; 403 without a reading role in its team)."""
    hold = (
        LegalHold.objects.visible_to(user)
        .select_related("team", "export", "placed_by", "released_by")
        .filter(pk=hold_id)
        .first()
    )
    if hold is None:
        raise NotFound(f"No legal hold {hold_id} among your teams.", code="legal_hold_not_found")
    if not getattr(user, "is_superuser", False):
        require_team_role(user=user, team_id=hold.team_id, roles=HOLD_READERS, action="read its legal holds")
    return hold


def holds_covering_export(export: NarrativeExport) -> QuerySet[LegalHold]:
    """The active holds covering ``export``: its own and its team's, newest first (one query)."""
    return (
        LegalHold.objects.active()
        .filter(Q(export_id=export.pk) | Q(export__isnull=True, team_id=export.execution.team_id))
        .select_related("placed_by")
    )
