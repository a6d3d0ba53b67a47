"""Human labels for every status, decision, action, role and event type a page shows (docs/pages.md).

One mapping for the whole site: templates say ``{{ export.status|label }}``, never the stored code. The labels of
the apps' choices come from those choices; codes that are not choices (event types, guardrail and job outcomes)
are listed here. A code nobody labelled still reads as words (``"stage_overdue"`` → ``"Stage overdue"``), so no
page ever shows a raw code; the page sweep (tests/browser/test_page_sweep.py) checks the codes below.
"""

from __future__ import annotations

from functools import cache

# Codes that are not model choices, and wordings that read better on a page than the choice's own label.
EXTRA_LABELS = {
    # Export and guardrail states.
    "no_ladder": "No approval ladder",
    "ready": "Ready to package",
    "blocked": "Blocked",
    "allowed": "Allowed",
    # Signature decisions, as a past event.
    "approve": "Approved",
    "reject": "Rejected",
    # Job and feed outcomes.
    "succeeded": "Succeeded",
    "partial": "Partly done",
    "refused": "Refused",
    # Timeline event types the governance app writes itself; the others are labelled in exports.events.EventType.
    "governance.api_tokens_revoked": "API tokens revoked",
}

# The choices whose labels pages use, in order of precedence when two apps share a code.
CHOICES = (
    "exports.choices.ExportStatus",
    "approvals.choices.StageStatus",
    "approvals.choices.LadderStatus",
    "approvals.choices.HistoryAction",
    "approvals.choices.QueueStatus",
    "approvals.choices.AuditReviewStatus",
    "approvals.choices.EscalationOutcome",
    "exports.events.EventType",
    "exports.choices.PackagingRunStatus",
    "exports.choices.ExecutionStatus",
    "exports.choices.EvidenceKind",
    "governance.choices.RoleKey",
    "governance.choices.TemplateStatus",
    "governance.choices.BaselineStatus",
)


@cache
def labels() -> dict[str, str]:
    """Every known code and its label (built once, after the apps are loaded)."""
    from django.utils.module_loading import import_string

    mapping: dict[str, str] = {}
    for path in CHOICES:
        for value, text in import_string(path).choices:
            mapping.setdefault(value, str(text))
    mapping.update(EXTRA_LABELS)
    return mapping


def label(code) -> str:
    """The label of ``code``; an unknown code reads as words, never as ``snake_case`` or ``dotted.names``."""
    if code is None or code == "":
        return ""
    text = str(code)
    known = labels().get(text)
    if known is not None:
        return known
    words = text.rsplit(".", 1)[-1].replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def raw_codes() -> frozenset[str]:
    """Codes that must never reach a page's visible text as they are stored: those written as codes (with ``_``
    or ``.``), and the single-word ones in lower case (``approved``, ``pending``)."""
    return frozenset(code for code in labels() if code != labels()[code])
