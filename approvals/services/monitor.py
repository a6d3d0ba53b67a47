"""The SLA monitor (docs/approvals.md, "The SLA monitor"): overdue and escalation markers, escalation emails, guardrail
re-checks and the detection of enforcement inconsistencies. Idempotent, batched, and safe with several monitors at
once."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

from approvals.choices import BLOCKING_QUEUE_STATUSES, HistoryAction, LadderStatus, QueueStatus, StageStatus
from approvals.guardrails import (
    dispatch_export_for_packaging,
    guardrail_verdict,
    record_packaging_queue_state,
)
from approvals.models import (
    ApprovalHistory,
    ApprovalLadder,
    ApprovalSignature,
    ApprovalStage,
    EnforcementObservation,
    SlaMonitorState,
)
from approvals.selectors import HEAVY_EXPORT_FIELDS
from exports.choices import ExportStatus
from exports.events import EventType
from exports.models import NarrativeExport
from exports.queue_state import (
    BLOCKED,
    QueueState,
    queue_state_pending_stage_id,
    queue_state_says,
    queue_state_status_is,
    queue_state_unset,
)
from exports.services.lifecycle import LifecycleRecord, export_lifecycle_record_many
from governance.models import Membership
from governance.services.audit import audit_record
from governance.services.outbox import DEDUPE_HEADER, email_enqueue
from textpolicy import inert_line
from textpolicy.utc import utc_iso

logger = logging.getLogger(__name__)

INCONSISTENCY_AUDIT_ACTION = "approvals.enforcement_inconsistency"
PACKAGING_STATUSES = (ExportStatus.QUEUED, ExportStatus.PACKAGING, ExportStatus.PACKAGED)


@dataclass
class MonitorReport:
    overdue: int = 0
    escalated: int = 0
    emails: int = 0
    rechecked: int = 0
    dispatched: int = 0
    inconsistencies: int = 0
    reported: int = 0
    cycle: int | None = None
    exports: set[int] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "overdue": self.overdue,
            "escalated": self.escalated,
            "emails": self.emails,
            "rechecked": self.rechecked,
            "dispatched": self.dispatched,
            "inconsistencies": self.inconsistencies,
            "reported": self.reported,
            "cycle": self.cycle,
            "seconds": {phase: round(value, 3) for phase, value in self.seconds.items()},
        }


def sla_monitor_run(*, now: datetime | None = None, batch_size: int | None = None) -> MonitorReport:
    now = now or timezone.now()
    batch_size = batch_size or settings.APPROVALS_SLA_MONITOR_BATCH
    report = MonitorReport()
    phases = {
        "overdue": lambda: _mark_all("overdue", now=now, batch_size=batch_size, report=report),
        "escalated": lambda: _mark_all("escalated", now=now, batch_size=batch_size, report=report),
        "guardrails": lambda: _guardrails_phase(report),
        "enforcement": lambda: _check_enforcement(now=now, report=report),
    }
    for phase, run in phases.items():
        started = time.monotonic()
        run()
        report.seconds[phase] = time.monotonic() - started
    return report


def _mark_all(kind: str, *, now: datetime, batch_size: int, report: MonitorReport) -> None:
    while _mark_batch(kind, now=now, batch_size=batch_size, report=report):
        pass


def _guardrails_phase(report: MonitorReport) -> None:
    _recheck_guardrails(report.exports, report=report)
    _dispatch_finalized(report=report)


# ---------------------------------------------------------------------------------------------------------------
# Markers


def _due(kind: str, now: datetime) -> Q:
    if kind == "overdue":
        return Q(status=StageStatus.IN_PROGRESS, overdue_at__isnull=True, due_at__lt=now)
    return Q(status=StageStatus.IN_PROGRESS, escalated_at__isnull=True, escalate_at__lt=now)


def _mark_batch(kind: str, *, now: datetime, batch_size: int, report: MonitorReport) -> bool:
    """Mark one batch of stages; False when nothing is left that this run can lock.

    The ladders are locked ``FOR UPDATE SKIP LOCKED``: a ladder another monitor (or an approval) holds is left to
    it, and the stage condition is re-read after the lock, so a stage is never marked twice.
    """
    with transaction.atomic():
        stages = _lock_due_stages(kind, now=now, batch_size=batch_size)
        if not stages:
            return False
        marker = "overdue_at" if kind == "overdue" else "escalated_at"
        ApprovalStage.objects.filter(pk__in=[stage.pk for stage in stages]).update(**{marker: now})
        action = HistoryAction.OVERDUE if kind == "overdue" else HistoryAction.ESCALATED
        event_type = EventType.STAGE_OVERDUE if kind == "overdue" else EventType.STAGE_ESCALATED
        recipients = _escalation_recipients(stages) if kind == "escalated" else {}
        history, records = [], []
        for stage in stages:
            ladder = stage.ladder
            payload = _marker_payload(kind, stage, recipients, now=now)
            history.append(
                ApprovalHistory(
                    ladder=ladder,
                    stage=stage,
                    action=action,
                    from_status=stage.status,
                    to_status=stage.status,
                    iteration=ladder.iteration,
                    payload=payload,
                    created_at=now,
                )
            )
            records.append(LifecycleRecord(export=ladder.export, event_type=event_type, payload=payload))
            report.rechecked += 1
            if QueueState.from_json(ladder.export.packaging_queue_state).key != _expected_key(stage, ladder):
                report.exports.add(ladder.export_id)
        ApprovalHistory.objects.bulk_create(history, batch_size=5000)
        export_lifecycle_record_many(records)
        _count_marked(kind, stages, recipients, now=now, report=report)
    return True


def _lock_due_stages(kind: str, *, now: datetime, batch_size: int) -> list[ApprovalStage]:
    """Lock up to ``batch_size`` ladders with a stage due for ``kind`` (skipping locked ones) and read those
    stages again under the lock."""
    candidates = ApprovalStage.objects.filter(_due(kind, now)).values("ladder_id")
    ladder_ids = list(
        ApprovalLadder.objects.select_for_update(skip_locked=True)
        .filter(pk__in=Subquery(candidates))
        .order_by("pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    if not ladder_ids:
        return []
    return list(
        ApprovalStage.objects.filter(_due(kind, now), ladder_id__in=ladder_ids)
        .select_related("ladder__export__execution", "assignee")
        .defer(*(f"ladder__export__{name}" for name in HEAVY_EXPORT_FIELDS))
        .order_by("pk")
    )


def _marker_payload(kind: str, stage: ApprovalStage, recipients: dict, *, now: datetime) -> dict[str, Any]:
    payload = {
        "stage_id": stage.pk,
        "stage_index": stage.index,
        "stage_name": stage.name,
        "required_role": stage.required_role,
        "iteration": stage.iteration,
        "assignee": stage.assignee.username if stage.assignee else None,
        "due_at": utc_iso(stage.due_at),
        "minutes_overdue": int((now - cast(datetime, stage.due_at)).total_seconds() // 60),  # a due stage has one
        "detected_at": utc_iso(now),
    }
    if kind == "escalated":
        payload["escalate_at"] = utc_iso(stage.escalate_at)
        team_id = stage.ladder.export.execution.team_id
        payload["notified"] = sorted(recipients.get((team_id, stage.required_role), []))
    return payload


def _count_marked(kind: str, stages: list[ApprovalStage], recipients: dict, *, now: datetime, report) -> None:
    if kind == "overdue":
        report.overdue += len(stages)
        return
    report.escalated += len(stages)
    messages = _escalation_messages(stages, recipients, now)
    report.emails += len(messages)
    for message in messages:  # sent after commit through the outbox, retried while the mail server is down
        email_enqueue(
            subject=str(message.subject),
            body=str(message.body),
            to=message.to,
            dedupe_key=message.extra_headers[DEDUPE_HEADER],
        )


def _expected_key(stage: ApprovalStage, ladder: ApprovalLadder) -> tuple:
    """The queue state key the guardrail gives a ladder whose active stage is ``stage``."""
    return QueueStatus.AWAITING_APPROVAL, stage.pk, ladder.iteration


def _escalation_recipients(stages: list[ApprovalStage]) -> dict[tuple[int, str], list[str]]:
    """Emails of the active members holding each (team, role) of the stages, in one query."""
    teams = {stage.ladder.export.execution.team_id for stage in stages}
    roles = {stage.required_role for stage in stages}
    found: dict[tuple[int, str], list[str]] = defaultdict(list)
    rows = (
        Membership.objects.filter(team_id__in=teams, role__key__in=roles, user__is_active=True)
        .exclude(user__email="")
        .values_list("team_id", "role__key", "user__email")
        .distinct()
    )
    for team_id, role, email in rows:
        found[(team_id, role)].append(email)
    return found


def _escalation_messages(
    stages: list[ApprovalStage], recipients: dict[tuple[int, str], list[str]], now: datetime
) -> list[EmailMessage]:
    """One message per (team, role): its members and the governance escalation address, listing every stage."""
    grouped: dict[tuple[int, str], list[ApprovalStage]] = defaultdict(list)
    for stage in stages:
        grouped[(stage.ladder.export.execution.team_id, stage.required_role)].append(stage)
    messages = []
    for (team_id, role), group in sorted(grouped.items()):
        lines = [
            f"The following approval stages for role '{role}' are past their escalation threshold "
            f"(detected {utc_iso(now)}):",
            "",
        ]
        # Titles, stage names and usernames are user-written: shown inert, one line each (docs/text-policy.md).
        for stage in group:
            export = stage.ladder.export
            lines.append(
                f"- Export {export.pk} v{export.version} ({inert_line(export.execution.title)}): stage "
                f"{stage.index + 1} '{inert_line(stage.name)}', due {utc_iso(stage.due_at)}, assignee "
                f"{inert_line(stage.assignee.username) if stage.assignee else 'none'}"
            )
        subject = (
            f"[Dossier] Escalation: export {group[0].ladder.export_id} stage '{inert_line(group[0].name)}' overdue"
            if len(group) == 1
            else f"[Dossier] Escalation: {len(group)} approval stages for {inert_line(role)} overdue"
        )
        to = sorted({*recipients.get((team_id, role), []), settings.GOVERNANCE_ESCALATION_EMAIL})
        # One escalation of these stage iterations is one e-mail, however often it is relayed.
        escalated = ",".join(f"{stage.pk}.{stage.iteration}" for stage in sorted(group, key=lambda s: s.pk))
        key = f"escalation:{team_id}:{hashlib.sha256(f'{role}|{escalated}'.encode()).hexdigest()[:40]}"
        messages.append(
            EmailMessage(subject=subject, body="\n".join(lines) + "\n", to=to, headers={DEDUPE_HEADER: key})
        )
    return messages


# ---------------------------------------------------------------------------------------------------------------
# Guardrail re-check


def _recheck_guardrails(export_ids: Iterable[int], *, report: MonitorReport) -> None:
    """Re-run the guardrail for the exports of marked stages whose stored state does not already name their
    active stage (for the others the guardrail's answer cannot have changed: marking a stage overdue does not
    change which stage blocks packaging); a state is only written when it differs."""
    ids = sorted(export_ids)
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        exports = list(
            NarrativeExport.objects.filter(pk__in=chunk)
            .select_related("ladder")
            .prefetch_related(
                Prefetch("ladder__stages", queryset=ApprovalStage.objects.order_by("index")),
                Prefetch("ladder__signatures", queryset=ApprovalSignature.objects.filter(superseded=False)),
            )
        )
        for export in exports:
            ladder = export.ladder
            verdict = guardrail_verdict(
                export=export, ladder=ladder, stages=list(ladder.stages.all()), signatures=ladder.signatures.all()
            )
            if QueueState.from_json(export.packaging_queue_state).key != verdict.queue_state().key:
                record_packaging_queue_state(export, verdict)


def _dispatch_finalized(*, report: MonitorReport) -> None:
    """Exports whose ladder is finalized but that never reached the queue are handed to packaging again."""
    for export in NarrativeExport.objects.filter(status=ExportStatus.APPROVED, ladder__status=LadderStatus.APPROVED):
        if dispatch_export_for_packaging(export).queued:
            report.dispatched += 1


# ---------------------------------------------------------------------------------------------------------------
# Enforcement inconsistencies


def enforcement_findings() -> dict[tuple[int, str], dict]:
    """Every export whose state breaks the approval rule right now, keyed by (export id, kind)."""
    findings: dict[tuple[int, str], dict] = {}
    open_stage = ApprovalStage.objects.filter(ladder__export_id=OuterRef("pk")).exclude(status=StageStatus.APPROVED)
    for export_id, status in (
        NarrativeExport.objects.filter(status__in=PACKAGING_STATUSES)
        .filter(Exists(open_stage))
        .values_list("pk", "status")
    ):
        findings[(export_id, "packaging_while_stage_open")] = {"export_status": status}
    # The worker re-writes a state it was blocked with as "blocked", keeping the guardrail's status beside it.
    blocking = list(BLOCKING_QUEUE_STATUSES)
    says_blocked = queue_state_says(blocking)
    for export_id, state in NarrativeExport.objects.filter(
        says_blocked, ladder__status=LadderStatus.APPROVED
    ).values_list("pk", "packaging_queue_state"):
        findings[(export_id, "queue_state_blocked_but_ladder_approved")] = {"state": state}
    for export_id, state in (
        NarrativeExport.objects.filter(ladder__status__in=[LadderStatus.IN_PROGRESS, LadderStatus.REJECTED])
        .exclude(says_blocked)
        .exclude(queue_state_status_is(BLOCKED))
        .exclude(queue_state_unset())
        .values_list("pk", "packaging_queue_state")
    ):
        findings[(export_id, "queue_state_ready_but_ladder_open")] = {"state": state}
    awaiting = queue_state_says([QueueStatus.AWAITING_APPROVAL], prefix="ladder__export__")
    for export_id, state, active_id in (
        ApprovalStage.objects.filter(awaiting, status=StageStatus.IN_PROGRESS, ladder__status=LadderStatus.IN_PROGRESS)
        .annotate(stored_stage=queue_state_pending_stage_id(prefix="ladder__export__"))
        .filter(Q(stored_stage__isnull=True) | ~Q(stored_stage=F("pk")))
        .values_list("ladder__export_id", "ladder__export__packaging_queue_state", "pk")
    ):
        findings[(export_id, "queue_state_names_another_stage")] = {"state": state, "active_stage_id": active_id}
    return findings


def _check_enforcement(*, now: datetime, report: MonitorReport) -> None:
    """One cycle of inconsistency detection; only one monitor at a time does it (the state row is locked with
    SKIP LOCKED, a concurrent run simply skips this part). Reported when seen in two consecutive cycles."""
    SlaMonitorState.objects.get_or_create(pk=1)
    with transaction.atomic():
        state = SlaMonitorState.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if state is None:
            return
        state.cycle += 1
        state.last_run_at = now
        state.save(update_fields=["cycle", "last_run_at"])
        report.cycle = state.cycle
        findings = enforcement_findings()
        report.inconsistencies = len(findings)
        observations = {(o.export_id, o.kind): o for o in EnforcementObservation.objects.all()}
        to_report, to_update, to_create = [], [], []
        for key, detail in findings.items():
            observation = observations.get(key)
            if observation is None or observation.last_cycle != state.cycle - 1:
                if observation is not None:
                    observation.delete()
                to_create.append(
                    EnforcementObservation(
                        export_id=key[0],
                        kind=key[1],
                        detail=detail,
                        first_cycle=state.cycle,
                        last_cycle=state.cycle,
                        first_seen_at=now,
                    )
                )
                continue
            observation.last_cycle, observation.detail = state.cycle, detail
            if observation.reported_at is None:
                observation.reported_at = now
                to_report.append(observation)
            to_update.append(observation)
        EnforcementObservation.objects.bulk_create(to_create)
        EnforcementObservation.objects.bulk_update(to_update, ["last_cycle", "detail", "reported_at"])
        EnforcementObservation.objects.exclude(last_cycle=state.cycle).delete()
        lines = []
        for observation in to_report:
            export = NarrativeExport.objects.select_related("execution").get(pk=observation.export_id)
            line = {
                "detected_at": utc_iso(now),
                "kind": observation.kind,
                "export_id": export.pk,
                "execution_id": export.execution_id,
                "team_id": export.execution.team_id,
                "first_cycle": observation.first_cycle,
                "cycle": state.cycle,
                "first_seen_at": utc_iso(observation.first_seen_at),
                "detail": observation.detail,
            }
            audit_record(action=INCONSISTENCY_AUDIT_ACTION, obj=export, team_id=export.execution.team_id, payload=line)
            lines.append(line)
        report.reported = len(lines)
        if lines:
            transaction.on_commit(lambda: _append_problems(lines))


def _append_problems(lines: list[dict]) -> None:
    path = Path(settings.PROBLEMS_DIR) / "enforcement.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, sort_keys=True, default=str) + "\n")
