"""Reads for ladders: restricted to the viewer's teams first, fixed query counts for pages of exports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import django_filters
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from approvals.choices import (
    DELEGATE_ROLES,
    OPEN_STAGE_STATUSES,
    RESET_ROLES,
    RESETTABLE_EXPORT_STATUSES,
    LadderStatus,
    QueueStatus,
    StageStatus,
)
from approvals.models import ApprovalHistory, ApprovalLadder, ApprovalSignature, ApprovalStage
from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from config.filters import IdFilter
from config.labels import label
from config.middleware import MAX_ID
from exports.choices import ExportStatus
from exports.models import LegalHold, NarrativeExport
from exports.permissions import EXECUTION_WRITERS
from exports.queue_state import queue_state_status_is
from exports.selectors.holds import holds_covering_export
from governance.choices import RoleKey
from governance.filtersets import filtered
from governance.models import Membership
from governance.selectors.teams import user_roles_in_team
from textpolicy.utc import utc_iso

# Who may review exports across their teams through the governance operator API.
GOVERNANCE_VIEW_ROLES = frozenset({RoleKey.OPERATOR, RoleKey.ADMIN, RoleKey.COMPLIANCE, RoleKey.AUDITOR})


def export_get_for_user(
    *,
    user,
    export_id: int,
    execution_id: int | None = None,
    related: tuple[str, ...] = ("execution__team", "author"),
    defer: tuple[str, ...] = (),
) -> NarrativeExport:
    """An export of one of ``user``'s teams (404 otherwise), with ``related`` rows loaded and ``defer`` not."""
    queryset = NarrativeExport.objects.visible_to(user).defer(*defer)
    if related:  # select_related() with no names would follow every foreign key
        queryset = queryset.select_related(*related)
    if execution_id is not None:
        queryset = queryset.filter(execution_id=execution_id)
    export = queryset.filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"Export {export_id} was not found.", code="export_not_found")
    return export


# Export columns no ladder action reads (the rendered narrative and the evidence manifest can be megabytes, the
# rest is parsed JSON); they are left unloaded and would load on access.
HEAVY_EXPORT_FIELDS = ("narrative_markdown", "evidence_manifest", "notes", "redaction_counts", "redaction_policy")


# What a signature binds (docs/exports.md): loaded, in the same query, when a signature is about to be recorded.
SIGNED_EXPORT_FIELDS = ("narrative_markdown", "evidence_manifest")


def export_lock(*, export_id: int, with_signed_content: bool = False) -> NarrativeExport:
    """The export row, locked. Every ladder action locks the export first and its ladder second, the order the
    packaging worker uses (export row, then the gate), so the two can never deadlock.

    ``with_signed_content`` also loads the stored narrative and evidence manifest, so the digest about to be
    signed can be checked against them without another query."""
    deferred = [field for field in HEAVY_EXPORT_FIELDS if not (with_signed_content and field in SIGNED_EXPORT_FIELDS)]
    return (
        NarrativeExport.objects.select_for_update(of=("self",))
        .select_related("execution")
        .defer(*deferred)
        .get(pk=export_id)
    )


def ladder_lock(*, export: NarrativeExport) -> ApprovalLadder | None:
    """``SELECT … FOR UPDATE`` on the ladder of an export (call with the export row already locked)."""
    return ApprovalLadder.objects.select_for_update().filter(export_id=export.pk).first()


def ladder_lock_with_stages(
    *, export: NarrativeExport, role_holder=None
) -> tuple[ApprovalLadder | None, list[ApprovalStage]]:
    """``ladder_lock`` and ``ladder_stages`` in one query: the stages joined to their ladder, ``FOR UPDATE OF`` the
    ladder row only. The stages share one ladder instance, as ``ladder.stages`` would give them.

    With ``role_holder`` (a user), each stage also carries ``holder_has_role``: whether that user holds the
    stage's required role in the export's team (``export.execution`` must be loaded), read in the same query."""
    queryset = (
        ApprovalStage.objects.select_related("ladder", "assignee")
        .select_for_update(of=("ladder",))
        .filter(ladder__export_id=export.pk)
        .order_by("index")
    )
    if role_holder is not None:
        memberships = Membership.objects.filter(
            user_id=role_holder.pk, team_id=export.execution.team_id, role__key=OuterRef("required_role")
        )
        queryset = queryset.annotate(holder_has_role=Exists(memberships))
    stages = list(queryset)
    if not stages:  # no ladder, or one without stages
        return ladder_lock(export=export), []
    ladder = stages[0].ladder
    for stage in stages:
        stage.ladder = ladder
    return ladder, stages


def ladder_stages(*, ladder: ApprovalLadder) -> list[ApprovalStage]:
    return list(ladder.stages.select_related("assignee").order_by("index"))


def live_signatures(*, ladder: ApprovalLadder) -> list[ApprovalSignature]:
    return list(ladder.signatures.filter(superseded=False).order_by("stage_index", "id"))


def ladder_signatures(*, ladder: ApprovalLadder) -> list[ApprovalSignature]:
    """Every signature of the ladder, superseded ones too, in the order the approval record lists them."""
    return list(ladder.signatures.order_by("signed_at", "id"))


def live_among(signatures: Iterable[ApprovalSignature]) -> list[ApprovalSignature]:
    """The live signatures of ``ladder_signatures``, ordered as ``live_signatures`` orders them."""
    return sorted((s for s in signatures if not s.superseded), key=lambda s: (s.stage_index, s.pk))


def active_stage(stages: Iterable[ApprovalStage]) -> ApprovalStage | None:
    return next((stage for stage in stages if stage.status == StageStatus.IN_PROGRESS), None)


def ladder_detail(*, export: NarrativeExport) -> ApprovalLadder | None:
    """The ladder with stages, every signature (superseded ones too) and the whole history, in four queries."""
    return (
        ApprovalLadder.objects.filter(export_id=export.pk)
        .prefetch_related(
            Prefetch("stages", queryset=ApprovalStage.objects.select_related("assignee").order_by("index")),
            Prefetch("signatures", queryset=ApprovalSignature.objects.order_by("signed_at", "id")),
            Prefetch(
                "history",
                queryset=ApprovalHistory.objects.select_related("actor", "from_assignee", "to_assignee", "stage"),
            ),
        )
        .first()
    )


# API field -> column, in the order the API shows them (the same fields as the serializers' representations).
SIGNATURE_COLUMNS = {
    "id": "id",
    "stage_id": "stage_id",
    "stage_index": "stage_index",
    "stage_name": "stage_name",
    "required_role": "required_role",
    "iteration": "iteration",
    "decision": "decision",
    "signer": "signer_username",
    "printed_name": "printed_name",
    "signed_as": "signed_as",
    "meaning": "meaning",
    "comment": "comment",
    "signed_at": "signed_at",
    "narrative_digest": "narrative_digest",
    "superseded": "superseded",
    "superseded_at": "superseded_at",
    "superseded_reason": "superseded_reason",
}
HISTORY_COLUMNS = {
    "id": "id",
    "stage_id": "stage_id",
    "action": "action",
    "actor": "actor__username",
    "from_assignee": "from_assignee__username",
    "to_assignee": "to_assignee__username",
    "from_status": "from_status",
    "to_status": "to_status",
    "reason": "reason",
    "iteration": "iteration",
    "payload": "payload",
    "created_at": "created_at",
}


def represent(obj, columns: dict[str, str]) -> dict[str, Any]:
    """``{field: value}`` of a model instance for a column map (``a__b`` follows a loaded relation; None-safe)."""
    row = {}
    for key, column in columns.items():
        value = obj
        for name in column.split("__"):
            value = getattr(value, name) if value is not None else None
        row[key] = value
    return row


def ladder_history_rows(*, ladder_id: int) -> list[dict[str, Any]]:
    """The whole history of a ladder as the API shows it, in one query that builds no model instances: an action
    that has just changed a ladder answers with these and the ladder, stages and signatures it already holds."""
    history = ApprovalHistory.objects.filter(ladder_id=ladder_id).order_by("id")
    return [dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in history.values_list(*HISTORY_COLUMNS.values())]


def stage_representation(stage: ApprovalStage) -> dict[str, Any]:
    return {
        "id": stage.pk,
        "index": stage.index,
        "name": stage.name,
        "required_role": stage.required_role,
        "status": stage.status,
        "assignee": stage.assignee.username if stage.assignee else None,
        "due_at": utc_iso(stage.due_at),
    }


def ladders_for_exports(export_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """``{export_id: {"status", "stages": [...]}}`` for a page of exports in two queries."""
    ids = list(export_ids)
    stages_by_ladder: dict[int, list[ApprovalStage]] = defaultdict(list)
    ladders = list(ApprovalLadder.objects.filter(export_id__in=ids).only("id", "export_id", "status", "iteration"))
    for stage in (
        ApprovalStage.objects.filter(ladder__in=[ladder.pk for ladder in ladders])
        .select_related("assignee")
        .order_by("ladder_id", "index")
    ):
        stages_by_ladder[stage.ladder_id].append(stage)
    return {
        ladder.export_id: {
            "status": ladder.status,
            "iteration": ladder.iteration,
            "stages": [stage_representation(stage) for stage in stages_by_ladder[ladder.pk]],
        }
        for ladder in ladders
    }


class GovernanceExportFilterSet(django_filters.FilterSet):
    """Filters of the exports list page and of the operators' export API (one set for both)."""

    q = django_filters.CharFilter(method="filter_search", label="Search: execution title, author or export number")
    status = django_filters.MultipleChoiceFilter(choices=ExportStatus.choices)
    team = django_filters.CharFilter(field_name="execution__team__slug")
    template = django_filters.CharFilter(field_name="template_snapshot__template_key")
    overdue = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false"), ("1", "1"), ("0", "0")], method="filter_overdue"
    )
    guardrail = django_filters.CharFilter(method="filter_guardrail", help_text="The stored queue state's status.")
    execution = IdFilter(field_name="execution_id")

    class Meta:
        model = NarrativeExport
        fields = ["q", "status", "team", "template", "overdue", "guardrail", "execution"]

    def filter_search(self, queryset, name, value):
        words = value.strip()
        if not words:
            return queryset
        match = Q(execution__title__icontains=words) | Q(author__username__icontains=words)
        number = words.removeprefix("#")
        if number.isdecimal() and int(number) <= MAX_ID:
            match |= Q(pk=int(number))
        return queryset.filter(match)

    def filter_overdue(self, queryset, name, value):
        return queryset.filter(is_overdue=value in ("true", "1"))

    def filter_guardrail(self, queryset, name, value):
        if value == "blocked":
            return queryset.filter(
                queue_state_status_is([QueueStatus.AWAITING_APPROVAL, QueueStatus.REJECTED, QueueStatus.NO_LADDER])
            )
        return queryset.filter(queue_state_status_is(value))


def overdue_stage_exists() -> Exists:
    return Exists(
        ApprovalStage.objects.filter(
            ladder__export_id=OuterRef("pk"), status=StageStatus.IN_PROGRESS, due_at__lt=timezone.now()
        )
    )


def exports_for_user(*, user, filters: dict[str, Any] | None = None) -> QuerySet[NarrativeExport]:
    """Exports of the user's teams, newest first, with the list page's filters (a bad value is a 400)."""
    queryset = (
        NarrativeExport.objects.visible_to(user)
        .select_related("execution__team", "author")
        .annotate(is_overdue=overdue_stage_exists())
        .order_by("-created_at", "-id")
    )
    return filtered(GovernanceExportFilterSet, filters, queryset)


def governance_exports_for_user(*, user, filters: dict[str, Any] | None = None) -> QuerySet[NarrativeExport]:
    """Exports of the teams where the user holds an operator-like role, with operator filters. A user who holds
    such a role nowhere is refused rather than shown an empty list."""
    teams = Membership.objects.filter(user=user, role__key__in=GOVERNANCE_VIEW_ROLES).values("team_id")
    if not teams.exists():
        raise PermissionDenied(
            f"Reviewing exports across teams needs one of the roles {', '.join(sorted(GOVERNANCE_VIEW_ROLES))}.",
            details={"required_roles": sorted(GOVERNANCE_VIEW_ROLES)},
        )
    queryset = (
        NarrativeExport.objects.visible_to(user)
        .filter(execution__team_id__in=teams)
        .select_related("execution__team", "author", "template_snapshot")
        .annotate(is_overdue=overdue_stage_exists())
        .order_by("-created_at", "-id")
    )
    filterset = GovernanceExportFilterSet(filters or {}, queryset)
    if not filterset.is_valid():
        raise ValidationFailed("Invalid filter.", code="invalid_filter", details={"fields": filterset.errors})
    return filterset.qs


def governance_export_get_for_user(*, user, export_id: int) -> NarrativeExport:
    export = governance_exports_for_user(user=user).filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"Export {export_id} was not found.", code="export_not_found")
    return export


def stage_lookup(stages: Iterable[ApprovalStage], stage_id: int) -> ApprovalStage:
    stage = next((stage for stage in stages if stage.pk == stage_id), None)
    if stage is None:
        raise NotFound(f"Stage {stage_id} is not a stage of this export's ladder.", code="stage_not_found")
    return stage


def open_stage_filter() -> Q:
    return Q(status__in=[StageStatus.PENDING, StageStatus.IN_PROGRESS])


def role_open_load(*, team_id: int, roles: Iterable[str]) -> dict[str, int]:
    """Open stages (pending or in progress, in ladders still running) per required role in a team: one query."""
    rows = (
        ApprovalStage.objects.for_team(team_id)
        .filter(open_stage_filter(), ladder__status=LadderStatus.IN_PROGRESS, required_role__in=set(roles))
        .values("required_role")
        .annotate(open=Count("id"))
        .order_by()
    )
    return {row["required_role"]: row["open"] for row in rows}


# ---------------------------------------------------------------------------------------------------------------
# Who may act on a stage: the rules the ladder services enforce and the export page shows, in one place.


def signing_capacity(*, user, stage: ApprovalStage, roles: set[str]) -> str | None:
    """In what capacity ``user`` may sign ``stage`` (its role, or as its assignee), or None."""
    if stage.required_role in roles:
        return stage.required_role
    if stage.assignee_id is not None and stage.assignee_id == user.pk:
        return "assignee"
    return None


def separation_of_duties_violation(
    *, user, export: NarrativeExport, stage: ApprovalStage, signatures: list[ApprovalSignature]
) -> str | None:
    """Why ``user`` may not sign ``stage``, or None: the author never signs their own export, and nobody signs
    two stages of one ladder iteration (live signatures are exactly those of the current iteration)."""
    if export.author_id == user.pk:
        return "The author of an export cannot sign its approval ladder."
    earlier = next((s for s in signatures if s.signer_id == user.pk and s.stage_id != stage.pk), None)
    if earlier is not None:
        return f"You already signed stage {earlier.stage_index + 1} ({earlier.stage_name}) of this ladder."
    return None


def delegation_permitted(*, user, roles: set[str], stage: ApprovalStage) -> bool:
    """The stage's role, being its assignee, or one of ``DELEGATE_ROLES``."""
    return bool(roles & DELEGATE_ROLES or stage.required_role in roles or stage.assignee_id == user.pk)


def delegation_refusal(*, ladder: ApprovalLadder, stage: ApprovalStage) -> Conflict | None:
    """Why ``stage`` cannot be delegated now, or None: only open stages of an open ladder can."""
    if ladder.status != LadderStatus.IN_PROGRESS or stage.status not in OPEN_STAGE_STATUSES:
        return Conflict(
            f"Stage '{stage.name}' is {stage.status}; only open stages can be delegated.", code="stage_closed"
        )
    return None


def reset_permitted(*, roles: set[str]) -> bool:
    return bool(roles & RESET_ROLES)


def reset_refusal(*, ladder: ApprovalLadder, export: NarrativeExport, stage: ApprovalStage) -> Conflict | None:
    """Why ``stage`` cannot be reset now, or None: the ladder was rejected, the export has left the building,
    or the stage never started."""
    if ladder.status == LadderStatus.REJECTED:
        return Conflict("A rejected ladder is closed; create a new export version.", code="ladder_closed")
    if export.status not in RESETTABLE_EXPORT_STATUSES:
        return Conflict(
            f"The export is {export.status}; its ladder can no longer be reset.",
            code="export_not_resettable",
            details={"status": export.status},
        )
    if stage.status == StageStatus.PENDING:
        return Conflict(f"Stage '{stage.name}' has not started; there is nothing to reset.", code="stage_not_started")
    return None


@dataclass(frozen=True)
class StagePermissions:
    delegate: bool
    reset: bool


@dataclass(frozen=True)
class ExportPage:
    """What the export page shows a user: the ladder as loaded, and what the user may do on it, decided by the
    same rules the ladder services enforce."""

    ladder: ApprovalLadder | None
    stages: list[ApprovalStage]
    signatures: list[ApprovalSignature]
    history: list[ApprovalHistory]
    active: ApprovalStage | None
    sign_refusal: str | None  # None: nothing to sign; "": the user may sign the active stage; else why not
    permissions: dict[int, StagePermissions]
    candidates_by_role: dict[str, list[str]]
    may_start_version: bool
    legal_holds: list[LegalHold]  # the active holds covering the export (docs/records-lifecycle.md)


def export_page_for_user(*, user, export: NarrativeExport) -> ExportPage:
    ladder = ladder_detail(export=export)
    stages = list(ladder.stages.all()) if ladder else []
    signatures = list(ladder.signatures.all()) if ladder else []
    roles = user_roles_in_team(user=user, team_id=export.execution.team_id)
    active = active_stage(stages)
    return ExportPage(
        ladder=ladder,
        stages=stages,
        signatures=signatures,
        history=list(ladder.history.all()) if ladder else [],
        active=active,
        sign_refusal=_sign_refusal(
            user=user, roles=roles, export=export, ladder=ladder, stage=active, signatures=signatures
        ),
        permissions={
            stage.pk: StagePermissions(
                delegate=_may_delegate(user=user, roles=roles, ladder=ladder, stage=stage),
                reset=ladder is not None
                and reset_permitted(roles=roles)
                and reset_refusal(ladder=ladder, export=export, stage=stage) is None,
            )
            for stage in stages
        },
        candidates_by_role=_candidates_by_role(team_id=export.execution.team_id, stages=stages),
        may_start_version=export.status in (ExportStatus.REJECTED, ExportStatus.APPROVAL_EXPIRED)
        and bool(roles & EXECUTION_WRITERS),
        legal_holds=list(holds_covering_export(export)),
    )


def _sign_refusal(*, user, roles, export, ladder, stage, signatures) -> str | None:
    if ladder is None or ladder.status != LadderStatus.IN_PROGRESS or stage is None:
        return None
    if signing_capacity(user=user, stage=stage, roles=roles) is None:
        return f"Signing this stage needs the role {label(stage.required_role)} or being its assignee."
    live = live_among(signatures)
    return separation_of_duties_violation(user=user, export=export, stage=stage, signatures=live) or ""


def _may_delegate(*, user, roles, ladder, stage) -> bool:
    return (
        ladder is not None
        and delegation_refusal(ladder=ladder, stage=stage) is None
        and delegation_permitted(user=user, roles=roles, stage=stage)
    )


def _candidates_by_role(*, team_id: int, stages: list[ApprovalStage]) -> dict[str, list[str]]:
    """The active members of the team holding each role the stages need: who a stage can be delegated to."""
    candidates: dict[str, list[str]] = {}
    for username, role in Membership.objects.filter(
        team_id=team_id, role__key__in={s.required_role for s in stages}, user__is_active=True
    ).values_list("user__username", "role__key"):
        candidates.setdefault(role, []).append(username)
    return candidates
