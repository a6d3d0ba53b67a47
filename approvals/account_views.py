"""Pages for the Part 11 controls (docs/part11.md): the signer's certification and the audit-trail reviews."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from approvals.forms import CertificationForm, ReviewCompleteForm
from approvals.services.audit_reviews import (
    audit_review_complete,
    audit_review_content,
    audit_review_get_for_user,
    audit_reviews_for_user,
    review_overdue,
)
from approvals.services.signing_controls import (
    CURRENT_STATEMENT,
    signer_certification,
    signer_certify,
    signing_session_continues,
    signing_session_key,
)
from config.client_address import client_address
from config.errors import DossierError, NotFound

REVIEWS_PER_PAGE = 25


def _next_url(request) -> str | None:
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    return target if target and allowed else None


@login_required
def signature_certification(request):
    """Certify, with one's password, that one's electronic signature binds like a handwritten one."""
    form = CertificationForm(request.POST or None, initial={"statement_version": CURRENT_STATEMENT.version})
    if request.method == "POST" and form.is_valid():
        try:
            signer_certify(user=request.user, client_address=client_address(request), **form.cleaned_data)
        except DossierError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Your electronic signature is certified: you may sign records.")
            return redirect(_next_url(request) or "account:signature-certification")
    context = {
        "form": form,
        "statement": CURRENT_STATEMENT,
        "certification": signer_certification(user=request.user),
        "next": _next_url(request) or "",
    }
    return render(request, "approvals/signature_certification.html", context, status=400 if form.errors else 200)


@login_required
def audit_review_list(request):
    reviews = audit_reviews_for_user(user=request.user)
    page = Paginator(reviews, REVIEWS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [{"review": review, "overdue": review_overdue(review)} for review in page]
    return render(request, "approvals/audit_review_list.html", {"page": page, "rows": rows})


def _review_or_404(request, review_id: int):
    try:
        return audit_review_get_for_user(user=request.user, review_id=review_id)
    except NotFound:
        raise Http404("No such audit review among your teams.") from None


@login_required
def audit_review_detail(request, review_id: int):
    review = _review_or_404(request, review_id)
    continues = signing_session_continues(user=request.user, session_key=signing_session_key(request))
    context = {
        "review": review,
        "overdue": review_overdue(review),
        "content": audit_review_content(review=review),
        "form": ReviewCompleteForm(username_required=not continues) if review.status == "open" else None,
    }
    return render(request, "approvals/audit_review_detail.html", context)


@login_required
@require_POST
def audit_review_complete_view(request, review_id: int):
    review = _review_or_404(request, review_id)
    form = ReviewCompleteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The signature form was incomplete: " + "; ".join(form.errors))
        return redirect("reviews:detail", review_id=review.pk)
    try:
        audit_review_complete(
            review_id=review.pk,
            actor=request.user,
            signing_session=signing_session_key(request),
            **form.cleaned_data,
        )
    except DossierError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Signed: the audit-trail review is complete.")
    return redirect("reviews:detail", review_id=review.pk)
