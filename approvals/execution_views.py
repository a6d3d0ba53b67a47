"""Server-rendered execution pages: one execution's timeline, evidence and exports, the forms that add evidence
and notebook entries, and the evidence picker that creates an export (with its live preview).

Thin: each view calls the same selectors and services as the API (docs/exports.md), with the same role rules, and
shows a refusal in the form (with the API's status) instead of an error page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.markdown import markdown_to_safe_html
from approvals.services.preview import execution_preview_record_for_user
from config.errors import DossierError, NotFound
from exports.forms import EvidenceUploadForm, ExportCreateForm, NotebookEntryForm
from exports.models import Execution, NarrativeExport
from exports.permissions import EXECUTION_WRITERS, require_team_role
from exports.selectors.executions import evidence_picker_items, execution_get_for_user
from exports.selectors.narrative_exports import export_selected_evidence, exports_for_execution
from exports.services.evidence import evidence_file_store, notebook_entry_create
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.uploads import HashingUploadHandler
from governance.selectors.teams import user_has_role

TIMELINE_SHOWN = 100
# Both evidence forms sit on the execution page: prefixes keep their field ids apart.
NOTEBOOK_PREFIX = "notebook"
UPLOAD_PREFIX = "upload"


def _execution_or_404(user, execution_id: int) -> Execution:
    try:
        return execution_get_for_user(user=user, execution_id=execution_id)
    except NotFound:
        raise Http404("No such execution among your teams.") from None


def _may_write(user, execution: Execution) -> bool:
    return user_has_role(user=user, team_id=execution.team_id, roles=EXECUTION_WRITERS)


def _refusal(exc: DossierError) -> dict:
    """A service refusal as the page shows it: the message, and the problem items of its details."""
    details = exc.details or {}
    items = []
    for key, value in details.items():
        if key == "fields" and isinstance(value, dict):
            items += [f"{field}: {'; '.join(map(str, problems))}" for field, problems in value.items()]
        elif isinstance(value, list):
            items += [
                f"{item['kind']}:{item['id']}"
                if isinstance(item, dict) and {"kind", "id"} <= item.keys()
                else str(item)
                for item in value
            ]
    return {"message": exc.message, "code": exc.code, "items": items}


def _execution_page(
    request: HttpRequest,
    execution: Execution,
    *,
    notebook_form: NotebookEntryForm | None = None,
    upload_form: EvidenceUploadForm | None = None,
    refusal: dict | None = None,
    status: int = 200,
) -> HttpResponse:
    events = list(execution.events.select_related("actor").order_by("-sequence")[:TIMELINE_SHOWN])
    exports = list(exports_for_execution(execution=execution).select_related("author"))
    writer = _may_write(request.user, execution)
    context = {
        "execution": execution,
        "events": events,
        "event_total": execution.last_sequence,
        "evidence": evidence_picker_items(execution=execution),
        "exports": exports,
        "may_write": writer,
        "notebook_form": notebook_form or NotebookEntryForm(prefix=NOTEBOOK_PREFIX),
        "upload_form": upload_form or EvidenceUploadForm(prefix=UPLOAD_PREFIX),
        "refusal": refusal,
    }
    return render(request, "approvals/execution_detail.html", context, status=status)


@require_GET
@login_required
def execution_detail(request: HttpRequest, execution_id: int) -> HttpResponse:
    return _execution_page(request, _execution_or_404(request.user, execution_id))


@require_POST
@login_required
def notebook_entry_add(request: HttpRequest, execution_id: int) -> HttpResponse:
    execution = _execution_or_404(request.user, execution_id)
    form = NotebookEntryForm(request.POST, prefix=NOTEBOOK_PREFIX)
    try:
        require_team_role(
            user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="write notebook entries"
        )
        if not form.is_valid():
            return _execution_page(request, execution, notebook_form=form, status=400)
        entry = notebook_entry_create(execution=execution, actor=request.user, **form.cleaned_data)
    except DossierError as exc:
        return _execution_page(request, execution, notebook_form=form, refusal=_refusal(exc), status=exc.status_code)
    messages.success(request, f"Notebook entry “{entry.title}” added as evidence.")
    return redirect("executions:detail", execution_id=execution.pk)


@csrf_exempt  # the hashing upload handler must be in place before anything reads the body; checked just below
@require_POST
@login_required
def evidence_upload(request: HttpRequest, execution_id: int) -> HttpResponse:
    execution = _execution_or_404(request.user, execution_id)
    request.upload_handlers = [HashingUploadHandler(request)]
    try:
        request.FILES  # noqa: B018 - parse now: an oversized or malformed body is refused here, before any write
    except DossierError as exc:
        return _execution_page(request, execution, refusal=_refusal(exc), status=exc.status_code)
    except MultiPartParserError:
        refusal = {"message": "The upload could not be read; choose the file again.", "code": "parse_error"}
        return _execution_page(request, execution, refusal=refusal, status=400)
    return _evidence_store(request, execution)


@csrf_protect
def _evidence_store(request: HttpRequest, execution: Execution) -> HttpResponse:
    form = EvidenceUploadForm(request.POST, request.FILES, prefix=UPLOAD_PREFIX)
    try:
        require_team_role(user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="upload files")
        if not form.is_valid():
            return _execution_page(request, execution, upload_form=form, status=400)
        upload = form.cleaned_data["file"]
        evidence = evidence_file_store(
            execution=execution,
            actor=request.user,
            upload=upload,
            sha256=upload.sha256,
            title=form.cleaned_data["title"],
            classification=form.cleaned_data["classification"],
        )
    except DossierError as exc:
        return _execution_page(request, execution, upload_form=form, refusal=_refusal(exc), status=exc.status_code)
    messages.success(request, f"File “{evidence.original_filename}” uploaded as evidence ({evidence.size} bytes).")
    return redirect("executions:detail", execution_id=execution.pk)


def _previous_version(execution: Execution, raw: str | None) -> NarrativeExport | None:
    """The export a new version starts from (``?from=<export id>``): one of this execution's, else ignored."""
    if not raw or not raw.isdigit():
        return None
    return exports_for_execution(execution=execution).filter(pk=int(raw)).first()


def _cited_event_ids(values: list[str]) -> list[int]:
    """Timeline entries named in a posted selection, so that they stay choices of the picker."""
    ids = []
    for value in values:
        kind, _, raw_id = value.partition(":")
        if kind == "timeline_event" and raw_id.isdigit():
            ids.append(int(raw_id))
    return ids


def _export_new_initial(selected: list, previous) -> dict:
    initial: dict = {"evidence": [f"{kind}:{pk}" for kind, pk in selected]}
    if previous:
        initial.update(notes=previous.notes, classification=previous.classification)
    return initial


def _export_new_submit(request: HttpRequest, execution, form: ExportCreateForm, context: dict) -> HttpResponse:
    """A valid POST: the preview of the selection, or the export created as the API does."""
    if request.POST.get("action") == "preview":
        selection = ",".join(form.cleaned_data["evidence"])
        preview = execution_preview_record_for_user(user=request.user, execution_id=execution.pk, evidence=selection)
        context.update(preview=preview, narrative_html=markdown_to_safe_html(preview.narrative_markdown))
        return render(request, "approvals/export_new.html", context)
    require_team_role(user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="create exports")
    export = export_create(
        execution=execution,
        actor=request.user,
        evidence=[EvidenceRef(kind=kind, id=pk) for kind, pk in form.evidence_refs()],
        notes=form.cleaned_data["notes"],
        classification=form.cleaned_data["classification"] or None,
    )
    messages.success(request, f"Export version {export.version} created; its approval ladder has started.")
    return redirect("approvals:export-detail", export_id=export.pk)


@require_http_methods(["GET", "POST"])
@login_required
def export_new(request: HttpRequest, execution_id: int) -> HttpResponse:
    """The evidence picker. GET shows it, pre-filled from ``?from=`` a previous version; POST with
    ``action=preview`` shows the live preview of the selection's narrative and ladder below it, any other POST
    creates the export as the API does and lands on its page."""
    execution = _execution_or_404(request.user, execution_id)
    data = request.POST if request.method == "POST" else None
    previous = _previous_version(execution, (data or request.GET).get("from"))
    selected = export_selected_evidence(export=previous) if previous else []
    event_ids = [pk for kind, pk in selected if kind == "timeline_event"]
    if data is not None:
        event_ids += _cited_event_ids(data.getlist("evidence"))
    items = evidence_picker_items(execution=execution, event_ids=event_ids)
    choices = [(item.value, item.title) for item in items]
    context = {
        "execution": execution,
        "items": items,
        "previous": previous,
        "may_write": _may_write(request.user, execution),
    }
    if data is None:
        form = ExportCreateForm(initial=_export_new_initial(selected, previous), choices=choices)
        return render(request, "approvals/export_new.html", {**context, "form": form})
    form = ExportCreateForm(data, choices=choices)
    context["form"] = form
    if not form.is_valid():
        return render(request, "approvals/export_new.html", context, status=400)
    try:
        return _export_new_submit(request, execution, form, context)
    except DossierError as exc:
        context["refusal"] = _refusal(exc)
        return render(request, "approvals/export_new.html", context, status=exc.status_code)
