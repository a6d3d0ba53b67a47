"""Demo ladders in every state (docs/teams-and-roles.md, "Demo data"): awaiting approval, overdue, rejected, packaged.
Idempotent: a ladder that has been acted on already is left alone."""

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalLadder, ApprovalStage
from approvals.services.ladders import stage_decide
from approvals.services.monitor import sla_monitor_run
from approvals.services.signing_controls import CURRENT_STATEMENT, signer_certification, signer_certify
from exports.choices import ExportStatus
from exports.demo import EXECUTIONS
from exports.models import Execution, NarrativeExport
from exports.services.narrative_exports import EvidenceRef, export_create
from governance.demo import DEMO_USERS, demo_team, demo_user
from governance.ladder import stage_escalate_at

SIGNERS = ("demo-reviewer", "demo-approver", "demo-compliance")


def _untouched_ladder(execution: Execution, *, create: bool) -> ApprovalLadder | None:
    """The execution's latest ladder if nobody has acted on it yet (creating a first export when asked)."""
    export = NarrativeExport.objects.filter(execution=execution).order_by("-version").first()
    if export is None:
        if not create:
            return None
        refs = [EvidenceRef(kind=row.kind, id=row.pk) for row in execution.evidence.order_by("id")]
        export = export_create(
            execution=execution, actor=demo_user("demo-scientist"), evidence=refs, notes="Demo export for review."
        )
    ladder = ApprovalLadder.objects.filter(export=export).first()
    if ladder is None or ladder.signatures.exists() or ladder.stages.filter(overdue_at__isnull=False).exists():
        return None
    return ladder


def _sign(ladder: ApprovalLadder, username: str, *, decision: str = "approve", comment: str = "") -> None:
    stage = ApprovalStage.objects.get(ladder=ladder, status="in_progress")
    stage_decide(
        export_id=ladder.export_id,
        actor=demo_user(username),
        username=username,
        decision=decision,
        password=settings.DEMO_PASSWORD,
        meaning=stage.meaning if decision == "approve" else stage.reject_meaning,
        comment=comment,
        expected_stage_id=stage.pk,
    )


def _certify_demo_users() -> None:
    """Every demo user certifies their electronic signature (docs/part11.md), as a signer must before signing."""
    for username in DEMO_USERS:
        user = demo_user(username)
        if signer_certification(user=user) is None:
            signer_certify(user=user, password=settings.DEMO_PASSWORD, statement_version=CURRENT_STATEMENT.version)


def seed(stdout) -> None:
    team = demo_team()
    _certify_demo_users()
    executions = [Execution.objects.get(team=team, title=title) for title, _ in EXECUTIONS]
    done: list[str | Callable[[], str]] = []  # an outcome known only once the seed commits is a callable
    # Execution 0 keeps its first export awaiting the scientific review.
    if ladder := _untouched_ladder(executions[1], create=True):
        stage = ladder.stages.get(status="in_progress")
        due = timezone.now() - timedelta(hours=3)
        ApprovalStage.objects.filter(pk=stage.pk).update(
            started_at=due - timedelta(hours=stage.sla_hours),
            due_at=due,
            escalate_at=stage_escalate_at(due, ladder.escalate_after_hours),
        )
        sla_monitor_run()
        done.append(f"overdue export {ladder.export_id}")
    if ladder := _untouched_ladder(executions[2], create=True):
        _sign(ladder, "demo-reviewer")
        _sign(ladder, "demo-approver", decision="reject", comment="Plate QC CV above 5 %: repeat the plate.")
        done.append(f"rejected export {ladder.export_id}")
    if ladder := _untouched_ladder(executions[3], create=True):
        for username in SIGNERS:
            _sign(ladder, username)
        done.append(partial(_approved_outcome, ladder.export_id))
    if ladder := _untouched_ladder(executions[4], create=True):
        _sign(ladder, "demo-reviewer")
        _sign(ladder, "demo-approver")
        done.append(f"export {ladder.export_id} awaiting compliance sign-off")
    # Written once the seed commits: packaging is dispatched on commit, so only then is its outcome known.
    transaction.on_commit(
        lambda: stdout.write(
            "approval ladders: "
            + ("; ".join(entry() if callable(entry) else entry for entry in done) if done else "already seeded")
        )
    )


def _approved_outcome(export_id: int) -> str:
    status = NarrativeExport.objects.filter(pk=export_id).values_list("status", flat=True).first()
    if status == ExportStatus.PACKAGED:
        return f"approved and packaged export {export_id}"
    return f"approved and queued export {export_id} (packaged once a worker runs)"
