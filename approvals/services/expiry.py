"""Approval expiry (docs/records-lifecycle.md, "Approval expiry"): a ladder still open after its template's
``ladder_expires_after_hours`` is closed, its export moves to ``approval_expired`` (recorded as
``narrative_export.approval.expired``) and the author is told by e-mail after commit. A new export version starts
a new ladder. Off unless the template's snapshot sets the hours; idempotent (a closed ladder is not open)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from approvals.choices import HistoryAction, LadderStatus
from approvals.models import ApprovalHistory, ApprovalLadder
from exports.choices import ExportStatus
from exports.events import EventType
from exports.services.transitions import export_transition
from governance.selectors.templates import snapshot_records_terms
from governance.services.outbox import email_enqueue
from textpolicy import inert_line
from textpolicy.utc import utc_iso


@dataclass
class ExpiryReport:
    checked: int = 0
    expired: list[int] = field(default_factory=list)  # ladder ids

    def as_dict(self) -> dict:
        return {"checked": self.checked, "expired": self.expired}


def _deadline(ladder: ApprovalLadder, hours_by_snapshot: dict[int | None, int | None]) -> datetime | None:
    key = ladder.template_snapshot_id
    if key not in hours_by_snapshot:
        hours_by_snapshot[key] = snapshot_records_terms(ladder.template_snapshot).ladder_expires_after_hours
    hours = hours_by_snapshot[key]
    return ladder.created_at + timedelta(hours=hours) if hours else None


def ladders_due_for_expiry(now: datetime) -> tuple[int, list[tuple[int, datetime]]]:
    """(open ladders checked, [(ladder id, deadline)] of those past their template's limit). Two queries: the open
    ladders, then their snapshots, each snapshot read once."""
    open_ladders = list(
        ApprovalLadder.objects.filter(status=LadderStatus.IN_PROGRESS, export__status=ExportStatus.AWAITING_APPROVAL)
        .select_related("template_snapshot")
        .only("id", "created_at", "template_snapshot")
        .order_by("id")
    )
    hours: dict[int | None, int | None] = {}
    due = []
    for ladder in open_ladders:
        deadline = _deadline(ladder, hours)
        if deadline is not None and deadline <= now:
            due.append((ladder.pk, deadline))
    return len(open_ladders), due


def _author_message(ladder: ApprovalLadder, deadline: datetime) -> EmailMessage | None:
    export = ladder.export
    email = export.author.email
    if not email:
        return None
    title = inert_line(export.execution.title)
    body = (
        f"The approval ladder of export {export.pk} v{export.version} ({title}) was still open at its limit "
        f"({utc_iso(deadline)}) and has been closed unfinished. The export will not be packaged; "
        "create a new version to start a new ladder.\n"
    )
    return EmailMessage(
        subject=f"[Dossier] Approval expired: export {export.pk} v{export.version}", body=body, to=[email]
    )


def _send_after_commit(message: EmailMessage | None, *, ladder_id: int) -> None:
    """Queue the author's e-mail in the expiry's transaction: the outbox sends it after commit and retries while
    the mail server is down (docs/architecture.md, "The outbox"); one e-mail per expired ladder."""
    if message is None:
        return
    email_enqueue(
        subject=str(message.subject),
        body=str(message.body),
        to=list(message.to),
        dedupe_key=f"approval-expired:{ladder_id}",
    )


@transaction.atomic
def ladder_expire(*, ladder_id: int, deadline: datetime, now: datetime) -> bool:
    """Close one open ladder past its limit; False when it was closed meanwhile (signed, rejected, reset...)."""
    ladder = (
        ApprovalLadder.objects.select_for_update(of=("self",))
        .select_related("export__execution", "export__author")
        .filter(pk=ladder_id, status=LadderStatus.IN_PROGRESS)
        .first()
    )
    if ladder is None or ladder.export.status != ExportStatus.AWAITING_APPROVAL:
        return False
    ladder.status = LadderStatus.EXPIRED
    ladder.save(update_fields=["status", "updated_at"])
    ApprovalHistory.objects.create(
        ladder=ladder,
        action=HistoryAction.EXPIRED,
        from_status=LadderStatus.IN_PROGRESS,
        to_status=LadderStatus.EXPIRED,
        iteration=ladder.iteration,
        payload={"deadline": utc_iso(deadline)},
        created_at=now,
    )
    export_transition(
        export=ladder.export,
        to=ExportStatus.APPROVAL_EXPIRED,
        event_type=EventType.APPROVAL_EXPIRED,
        payload={"ladder_id": ladder.pk, "opened_at": utc_iso(ladder.created_at), "deadline": utc_iso(deadline)},
    )
    _send_after_commit(_author_message(ladder, deadline), ladder_id=ladder.pk)
    return True


def ladders_expire(*, now: datetime | None = None) -> ExpiryReport:
    """The periodic run: close every open ladder past its template's limit, one transaction each."""
    now = now or timezone.now()
    checked, due = ladders_due_for_expiry(now)
    report = ExpiryReport(checked=checked)
    for ladder_id, deadline in due:
        if ladder_expire(ladder_id=ladder_id, deadline=deadline, now=now):
            report.expired.append(ladder_id)
    return report
