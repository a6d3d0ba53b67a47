"""Server-rendered export pages: the dossier preview, its ladder as a timeline, and the signing forms."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from approvals.choices import LadderStatus, StageStatus
from approvals.forms import DecisionForm, DelegateForm, ResetForm
from approvals.guardrails import verify_export_packaging_guardrails
from approvals.markdown import markdown_to_safe_html
from approvals.selectors import export_get_for_user, ladder_detail, ladders_for_exports
from approvals.services.ladders import (
    DELEGATE_ROLES,
    RESET_ROLES,
    RESETTABLE_EXPORT_STATUSES,
    separation_of_duties_violation,
    signing_capacity,
    stage_decide,
    stage_delegate,
    stage_reset,
)
from approvals.services.preview import execution_preview_for_user
from approvals.services.signing import signing_status
from config.errors import DossierError, NotFound, ValidationFailed
from config.humanize import until_in_words
from exports.models import NarrativeExport
from exports.services.clearance import export_clearance_allows, export_clearance_record_denial
from governance.models import Membership
from governance.selectors.teams import user_roles_in_team


def _export_or_404(user, export_id: int) -> NarrativeExport:
    try:
        return export_get_for_user(user=user, export_id=export_id)
    except NotFound:
        raise Http404("No such export among your teams.") from None


@login_required
def export_list(request):
    exports = list(
        NarrativeExport.objects.visible_to(request.user)
        .select_related("execution__team", "author")
        .order_by("-created_at", "-id")[:200]
    )
    ladders = ladders_for_exports(export.pk for export in exports)
    rows = []
    for export in exports:
        ladder = ladders.get(export.pk) or {"stages": []}
        active = next((s for s in ladder["stages"] if s["status"] == StageStatus.IN_PROGRESS), None)
        rows.append({"export": export, "active": active})
    return render(request, "approvals/export_list.html", {"rows": rows})


def signing_notice(*, user) -> tuple[str, bool]:
    """(what the sign form says about the signer's lockout standing, whether signing is locked now)."""
    now = timezone.now()
    status = signing_status(user=user, now=now)
    if status.locked_until is not None:
        until = until_in_words(status.locked_until, now=now)
        return f"Signing is locked until {until}: too many wrong passwords.", True
    if status.failures:
        left = status.remaining_attempts
        return f"{left} attempt{'s' if left != 1 else ''} left before signing is locked.", False
    return "", False


def _page_context(request, export: NarrativeExport) -> dict:
    user = request.user
    cleared = export_clearance_allows(export=export, user=request.user)
    if not cleared:  # metadata only (docs/clearance.md); the refusal is recorded like any other
        export_clearance_record_denial(export=export, user=request.user, action="detail")
    ladder = ladder_detail(export=export)
    stages = list(ladder.stages.all()) if ladder else []
    signatures = list(ladder.signatures.all()) if ladder else []
    live = [s for s in signatures if not s.superseded]
    roles = user_roles_in_team(user=user, team_id=export.execution.team_id)
    active = next((s for s in stages if s.status == StageStatus.IN_PROGRESS), None)
    open_ladder = ladder is not None and ladder.status == LadderStatus.IN_PROGRESS

    sign_form, sign_refusal, sign_notice = None, "", ""
    if open_ladder and active is not None:
        if signing_capacity(user=user, stage=active, roles=roles) is None:
            sign_refusal = f"Signing this stage needs the role {active.required_role} or being its assignee."
        else:
            sign_refusal = separation_of_duties_violation(user=user, export=export, stage=active, signatures=live) or ""
        if not sign_refusal:
            sign_form = DecisionForm(initial={"expected_stage_id": active.pk, "meaning": active.meaning})
            sign_notice, locked = signing_notice(user=user)
            if locked:
                sign_form, sign_refusal = None, sign_notice

    candidates_by_role = {}
    for username, role in Membership.objects.filter(
        team_id=export.execution.team_id, role__key__in={s.required_role for s in stages}, user__is_active=True
    ).values_list("user__username", "role__key"):
        candidates_by_role.setdefault(role, []).append(username)

    rows = []
    for stage in stages:
        is_open = stage.status in (StageStatus.PENDING, StageStatus.IN_PROGRESS)
        may_delegate = (
            open_ladder
            and is_open
            and bool(roles & DELEGATE_ROLES or stage.required_role in roles or stage.assignee_id == user.pk)
        )
        may_reset = (
            ladder is not None
            and ladder.status != LadderStatus.REJECTED
            and stage.status != StageStatus.PENDING
            and export.status in RESETTABLE_EXPORT_STATUSES
            and bool(roles & RESET_ROLES)
        )
        candidates = sorted(
            name for name in candidates_by_role.get(stage.required_role, []) if name != export.author.username
        )
        rows.append(
            {
                "stage": stage,
                "signatures": [s for s in signatures if s.stage_id == stage.pk],
                "delegate_form": DelegateForm(candidates=candidates, prefix=f"d{stage.pk}") if may_delegate else None,
                "reset_form": ResetForm(prefix=f"r{stage.pk}") if may_reset else None,
            }
        )
    return {
        "export": export,
        "execution": export.execution,
        "ladder": ladder,
        "stages": rows,
        "history": list(ladder.history.all()) if ladder else [],
        "active": active,
        "sign_form": sign_form,
        "sign_refusal": sign_refusal,
        "sign_notice": sign_notice,
        "guardrail": verify_export_packaging_guardrails(export),
        "narrative_html": markdown_to_safe_html(export.narrative_markdown) if cleared else None,
        "cleared": cleared,
        "packaged": export.status == "packaged",
    }


@login_required
def export_detail(request, export_id: int):
    export = _export_or_404(request.user, export_id)
    return render(request, "approvals/export_detail.html", _page_context(request, export))


def _run(request, action, success: str):
    try:
        action()
    except DossierError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)


@login_required
@require_POST
def export_sign(request, export_id: int):
    export = _export_or_404(request.user, export_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The signature form was incomplete: " + "; ".join(form.errors))
        return redirect("approvals:export-detail", export_id=export.pk)
    data = form.cleaned_data
    verb = "approved" if data["decision"] == "approve" else "rejected"
    _run(
        request,
        lambda: stage_decide(export_id=export.pk, actor=request.user, **data),
        f"Signed: stage {verb}.",
    )
    return redirect("approvals:export-detail", export_id=export.pk)


@login_required
@require_POST
def stage_delegate_view(request, export_id: int, stage_id: int):
    export = _export_or_404(request.user, export_id)
    form = DelegateForm(request.POST, prefix=f"d{stage_id}")
    if not form.is_valid():
        messages.error(request, "Give an assignee and a reason to delegate.")
        return redirect("approvals:export-detail", export_id=export.pk)
    data = form.cleaned_data
    _run(
        request,
        lambda: stage_delegate(export_id=export.pk, stage_id=stage_id, actor=request.user, **data),
        f"Stage delegated to {data['assignee']}.",
    )
    return redirect("approvals:export-detail", export_id=export.pk)


@login_required
@require_POST
def stage_reset_view(request, export_id: int, stage_id: int):
    export = _export_or_404(request.user, export_id)
    form = ResetForm(request.POST, prefix=f"r{stage_id}")
    if not form.is_valid():
        messages.error(request, "Give a reason to reset the stage.")
        return redirect("approvals:export-detail", export_id=export.pk)
    _run(
        request,
        lambda: stage_reset(export_id=export.pk, stage_id=stage_id, actor=request.user, **form.cleaned_data),
        "Stage reset: later signatures are superseded and the stage is open again.",
    )
    return redirect("approvals:export-detail", export_id=export.pk)


@login_required
def execution_preview(request, execution_id: int):
    """The scientist's view of the preview API: the ladder a new export would get and the dossier it would carry."""
    selector = request.GET.get("evidence")
    try:
        preview = execution_preview_for_user(user=request.user, execution_id=execution_id, evidence=selector)
    except NotFound:
        raise Http404("No such execution among your teams.") from None
    except ValidationFailed as exc:
        return render(
            request,
            "approvals/execution_preview.html",
            {"error": exc.message, "details": exc.details, "selector": selector},
            status=400,
        )
    return render(
        request,
        "approvals/execution_preview.html",
        {
            "preview": preview,
            "execution": preview.execution,
            "template": preview.as_dict()["template"],
            "selector": selector or "",
            "narrative_html": markdown_to_safe_html(preview.narrative_markdown),
        },
    )
