"""Server-rendered export pages: the dossier preview, its ladder as a timeline, and the signing forms."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from approvals.choices import DECISION_OUTCOMES, StageStatus
from approvals.forms import DecisionForm, DelegateForm, ResetForm
from approvals.guardrails import verify_export_packaging_guardrails
from approvals.markdown import markdown_to_safe_html
from approvals.selectors import (
    ExportPage,
    export_get_for_user,
    export_page_for_user,
    exports_for_user,
    ladders_for_exports,
)
from approvals.services.ladders import stage_decide, stage_delegate, stage_reset
from approvals.services.preview import execution_preview_record_for_user
from approvals.services.signing import signing_status
from config.errors import DossierError, NotFound, ValidationFailed
from config.humanize import until_in_words
from exports.choices import ExportStatus
from exports.formats import RENDITION_FORMAT
from exports.models import NarrativeExport
from exports.selectors.executions import executions_for_user
from exports.services.clearance import export_reader_views
from exports.services.timestamps import export_trusted_time
from governance.selectors.teams import teams_for_user


def _export_or_404(user, export_id: int) -> NarrativeExport:
    try:
        return export_get_for_user(user=user, export_id=export_id)
    except NotFound:
        raise Http404("No such export among your teams.") from None


EXPORTS_PER_PAGE = 25
EXECUTION_CHOICES = 200  # newest executions offered in the list's filter
LIST_FILTERS = ("q", "status", "team", "execution", "overdue")


@login_required
def export_list(request):
    """The exports of the user's teams with filters, search and pages (the FilterSet the operators' API uses)."""
    filters = QueryDict(mutable=True)
    for key in LIST_FILTERS:
        if values := [value.strip() for value in request.GET.getlist(key) if value.strip()]:
            filters.setlist(key, values)
    error, page = "", None
    try:
        exports = exports_for_user(user=request.user, filters=filters)
    except ValidationFailed as exc:
        error = "These filters cannot be applied: " + "; ".join(
            f"{name}: {' '.join(problems)}" for name, problems in exc.details.get("fields", {}).items()
        )
    else:
        page = Paginator(exports, EXPORTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = []
    if page is not None:
        ladders = ladders_for_exports(export.pk for export in page)
        for export in page:
            ladder = ladders.get(export.pk) or {"stages": []}
            active = next((s for s in ladder["stages"] if s["status"] == StageStatus.IN_PROGRESS), None)
            rows.append({"export": export, "active": active})
    context = {
        "rows": rows,
        "page": page,
        "filters": filters,
        "filtered": bool(filters),
        "query": filters.urlencode(),
        "error": error,
        "statuses": ExportStatus.choices,
        "teams": teams_for_user(user=request.user).values_list("slug", "name"),
        "executions": executions_for_user(user=request.user)
        .order_by("-created_at", "-id")
        .values_list("pk", "title")[:EXECUTION_CHOICES],
    }
    return render(request, "approvals/export_list.html", context, status=400 if error else 200)


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
    # Above the clearance: metadata only, or the narrative with the evidence above it withheld under the
    # ``redact`` policy (docs/clearance.md); the refusal is recorded like any other.
    reader = export_reader_views(exports=[export], user=request.user, action="detail").get(export.pk)
    narrative = export.narrative_markdown if reader is None else reader.narrative(export)
    page = export_page_for_user(user=request.user, export=export)
    sign_form, sign_refusal, sign_notice = _sign_section(request.user, export, page)
    trusted_time = export_trusted_time(export, [signature.pk for signature in page.signatures])
    for signature in page.signatures:
        setattr(signature, "trusted_timestamp", trusted_time.signatures.get(signature.pk))  # noqa: B010
    return {
        "export": export,
        "execution": export.execution,
        "ladder": page.ladder,
        "stages": [_stage_row(export, page, stage) for stage in page.stages],
        "history": page.history,
        "active": page.active,
        "sign_form": sign_form,
        "sign_refusal": sign_refusal,
        "sign_notice": sign_notice,
        "guardrail": verify_export_packaging_guardrails(export),
        "narrative_html": markdown_to_safe_html(narrative) if narrative is not None else None,
        "cleared": reader is None,
        "packaged": export.status == ExportStatus.PACKAGED,
        # The artifact is packaged with the export's own format: from format 4 on it carries the PDF rendition.
        "has_rendition": export.bundle_format_version >= RENDITION_FORMAT,
        "may_start_version": page.may_start_version,
        "trusted_time": trusted_time,
    }


def _sign_section(user, export: NarrativeExport, page: ExportPage) -> tuple[DecisionForm | None, str, str]:
    """(the sign form, why the user may not sign, what the form says about their lockout standing)."""
    if page.sign_refusal is None or page.active is None:  # a refusal, even "", is about the active stage
        return None, "", ""
    if page.sign_refusal:
        return None, page.sign_refusal, ""
    notice, locked = signing_notice(user=user)
    if locked:
        return None, notice, notice
    return DecisionForm(initial={"expected_stage_id": page.active.pk}, stage=page.active), "", notice


def _stage_row(export: NarrativeExport, page: ExportPage, stage) -> dict:
    may = page.permissions[stage.pk]
    candidates = sorted(
        name for name in page.candidates_by_role.get(stage.required_role, []) if name != export.author.username
    )
    return {
        "stage": stage,
        "signatures": [s for s in page.signatures if s.stage_id == stage.pk],
        "delegate_form": DelegateForm(candidates=candidates, prefix=f"d{stage.pk}") if may.delegate else None,
        "reset_form": ResetForm(prefix=f"r{stage.pk}") if may.reset else None,
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
    verb = DECISION_OUTCOMES[data["decision"]]
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
        preview = execution_preview_record_for_user(user=request.user, execution_id=execution_id, evidence=selector)
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
