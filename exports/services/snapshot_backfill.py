"""Backfilling the template snapshot of exports created before exports pinned one (``migrate_exports``).

For each export without a snapshot, the rules in force *when it was created* are reconstructed, in the order of
docs/templates-and-baselines.md — the team's assignment of the protocol template, then the team's assignment, then
the platform's default template, never another team's template — where:

- the assignment of a target at time T is read from the template audit log (``assigned``/``unassigned`` rows
  up to T); a target with no logged history falls back to its current assignment if it existed at T;
- an assigned key applies through its highest version whose snapshot existed at T (snapshot ``created_at <= T``)
  and which was not archived by then; a level with nothing published then is skipped.

Nothing is guessed. An export is left alone, and the anomaly is appended as one JSON line to
``settings.PROBLEMS_DIR / "governance_migration.log"``, when nothing applied then (``no_snapshot_applied``), when
the snapshot that applied has drifted (``drifted_snapshot``: pinning tampered rules would hide the tampering),
or when the answer is not unique (``ambiguous``: two snapshots of the same version, an assignment change at the
very instant of creation, or a creation event that recorded a different snapshot).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exports.events import EventType
from exports.models import ExecutionEvent, NarrativeExport
from governance.choices import TemplateAuditAction
from governance.models import GovernanceTemplateAuditLog, WorkflowTemplateAssignment, WorkflowTemplateSnapshot
from governance.selectors.templates import snapshot_has_drifted
from governance.services.audit import audit_record

PROBLEMS_LOG = "governance_migration.log"

NO_SNAPSHOT = "no_snapshot_applied"
DRIFTED = "drifted_snapshot"
AMBIGUOUS = "ambiguous"


@dataclass
class BackfillOutcome:
    export_id: int
    execution_id: int
    version: int
    created_at: datetime
    snapshot: WorkflowTemplateSnapshot | None = None
    source: str = ""
    anomaly: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def problem_line(self) -> dict[str, Any]:
        return {
            "detected_at": timezone.now().isoformat(),
            "anomaly": self.anomaly,
            "export_id": self.export_id,
            "execution_id": self.execution_id,
            "version": self.version,
            "export_created_at": self.created_at.isoformat(),
            "reason": self.reason,
            "details": self.details,
        }


@dataclass
class BackfillReport:
    dry_run: bool
    outcomes: list[BackfillOutcome]
    log_path: Path

    @property
    def fixable(self) -> list[BackfillOutcome]:
        return [o for o in self.outcomes if not o.anomaly]

    @property
    def anomalies(self) -> list[BackfillOutcome]:
        return [o for o in self.outcomes if o.anomaly]

    def anomaly_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for outcome in self.anomalies:
            counts[outcome.anomaly] += 1
        return dict(sorted(counts.items()))


Target = tuple[Any, ...]
Family = tuple[int | None, str]  # (owning team id or None for the platform, template key)


class _RulesHistory:
    """Assignments and snapshots as they stood at any instant, loaded once.

    A target is ``("team", team_id)`` or ``("protocol", team_id, protocol_key)``; protocol assignments logged
    before assignments named their team (``team_id`` None) applied in every team and still count as that team's
    history when it has none of its own. A template is found by its family: (owner, key).
    """

    def __init__(self) -> None:
        self.logs: dict[Target, list[GovernanceTemplateAuditLog]] = defaultdict(list)
        for log in (
            GovernanceTemplateAuditLog.objects.filter(
                action__in=[TemplateAuditAction.ASSIGNED, TemplateAuditAction.UNASSIGNED]
            )
            .select_related("template")
            .order_by("created_at", "id")
        ):
            self.logs[self._target(log.team_id, (log.details or {}).get("protocol_template_key"))].append(log)
        self.current: dict[Target, WorkflowTemplateAssignment] = {}
        for assignment in WorkflowTemplateAssignment.objects.select_related("template"):
            self.current[self._target(assignment.team_id, assignment.protocol_template_key)] = assignment
        self.snapshots: dict[Family, list[WorkflowTemplateSnapshot]] = defaultdict(list)
        for snapshot in WorkflowTemplateSnapshot.objects.select_related("template").order_by("id"):
            self.snapshots[(snapshot.template.team_id, snapshot.template_key)].append(snapshot)

    @staticmethod
    def _target(team_id: int | None, protocol_key: str | None) -> Target:
        return ("protocol", team_id, protocol_key) if protocol_key else ("team", team_id)

    def assigned(self, target: Target, at: datetime) -> tuple[Family | None, bool]:
        """(family assigned to ``target`` at ``at`` or None, whether a change happened exactly then)."""
        history = self.logs.get(target)
        if not history and target[0] == "protocol":
            history = self.logs.get(("protocol", None, target[2]))
        if history:
            tie = any(log.created_at == at for log in history)
            before = [log for log in history if log.created_at <= at]
            if not before or before[-1].action == TemplateAuditAction.UNASSIGNED:
                return None, tie
            template = before[-1].template
            owner = template.team_id if template is not None else target[1]
            return (owner, before[-1].template_key), tie
        assignment = self.current.get(target)
        if assignment is not None and assignment.created_at <= at:
            family = (assignment.template.team_id, assignment.template.template_key)
            return family, assignment.created_at == at
        return None, False

    def snapshots_at(self, family: Family, at: datetime) -> list[WorkflowTemplateSnapshot]:
        """The snapshots of the family's highest version in force at ``at`` (normally one)."""
        live = [
            snapshot
            for snapshot in self.snapshots.get(family, [])
            if snapshot.created_at <= at
            and (snapshot.template.archived_at is None or snapshot.template.archived_at > at)
        ]
        if not live:
            return []
        top = max(snapshot.version for snapshot in live)
        return [snapshot for snapshot in live if snapshot.version == top]


def _assignment_levels(execution, rules: _RulesHistory, at) -> list[tuple[str, Family | None, bool]]:
    """The assignments in force at ``at``, most specific first: (source, template family or None, tie)."""
    levels: list[tuple[str, Family | None, bool]] = []
    if execution.protocol_template_key:
        target = ("protocol", execution.team_id, execution.protocol_template_key)
        levels.append(("protocol", *rules.assigned(target, at)))
    levels.append(("team", *rules.assigned(("team", execution.team_id), at)))
    levels.append(("default", (None, settings.DOSSIER_DEFAULT_TEMPLATE_KEY), False))
    return levels


def _judged(outcome: BackfillOutcome, *, recorded_id: int | None, skipped: list[str], protocol: str) -> BackfillOutcome:
    """The resolved snapshot checked against the creation event's record and its own sha256."""
    resolved_id = outcome.snapshot.pk if outcome.snapshot else None
    if recorded_id is not None and recorded_id != resolved_id:
        outcome.anomaly = AMBIGUOUS
        outcome.reason = "the creation event recorded a different snapshot than the rules in force then give"
        outcome.details = {"recorded_snapshot_id": recorded_id, "resolved_snapshot_id": resolved_id}
        outcome.snapshot = None
    elif outcome.snapshot is None:
        outcome.anomaly, outcome.reason = NO_SNAPSHOT, "no published template applied when the export was created"
        outcome.details = {"skipped": skipped, "protocol_template_key": protocol}
    elif snapshot_has_drifted(outcome.snapshot):
        outcome.anomaly, outcome.reason = DRIFTED, "the snapshot that applied no longer matches its sha256"
        outcome.details = {"snapshot_id": outcome.snapshot.pk, "recorded_sha256": outcome.snapshot.content_sha256}
    return outcome


def _resolve(export: NarrativeExport, rules: _RulesHistory, recorded: dict[int, int]) -> BackfillOutcome:
    execution = export.execution
    at = export.created_at
    outcome = BackfillOutcome(export.pk, execution.pk, export.version, at)
    skipped: list[str] = []
    for source, family, tie in _assignment_levels(execution, rules, at):
        if tie:
            outcome.anomaly, outcome.reason = AMBIGUOUS, f"the {source} assignment changed at the export's creation"
            outcome.details = {"source": source}
            return outcome
        if family is None or family[0] not in (None, execution.team_id):
            continue
        key = family[1]
        candidates = rules.snapshots_at(family, at)
        if not candidates:
            skipped.append(f"{source} template '{key}' had nothing published")
            continue
        if len(candidates) > 1 or any(snapshot.created_at == at for snapshot in candidates):
            outcome.anomaly, outcome.reason = AMBIGUOUS, f"the {source} template '{key}' has no single snapshot then"
            outcome.details = {"source": source, "snapshot_ids": [snapshot.pk for snapshot in candidates]}
            return outcome
        outcome.snapshot, outcome.source = candidates[0], source
        break
    return _judged(
        outcome, recorded_id=recorded.get(export.pk), skipped=skipped, protocol=execution.protocol_template_key
    )


def _recorded_snapshots(export_ids: list[int]) -> dict[int, int]:
    """Snapshot ids that creation events recorded for these exports (the strongest evidence there is)."""
    recorded = {}
    for payload in ExecutionEvent.objects.filter(
        event_type=EventType.EXPORT_CREATED, payload__export_id__in=export_ids
    ).values_list("payload", flat=True):
        if isinstance(payload.get("template_snapshot_id"), int):
            recorded[payload["export_id"]] = payload["template_snapshot_id"]
    return recorded


def _append_problems(path: Path, outcomes: list[BackfillOutcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for outcome in outcomes:
            handle.write(json.dumps(outcome.problem_line(), sort_keys=True, default=str) + "\n")


def exports_snapshot_backfill(*, dry_run: bool, actor=None) -> BackfillReport:
    """Pin the snapshot that applied at creation on every export lacking one; log what cannot be resolved.

    A dry run reads only. A real run pins under row locks (an export pinned meanwhile is left alone), writes one
    audit event per pinned export, and appends the anomalies to the problems log after commit.
    """
    log_path = Path(settings.PROBLEMS_DIR) / PROBLEMS_LOG
    exports = list(
        NarrativeExport.objects.filter(template_snapshot__isnull=True)
        .select_related("execution")
        .only("id", "version", "created_at", "execution__id", "execution__team_id", "execution__protocol_template_key")
        .order_by("created_at", "id")
    )
    if not exports:
        return BackfillReport(dry_run, [], log_path)
    rules = _RulesHistory()
    recorded = _recorded_snapshots([export.pk for export in exports])
    report = BackfillReport(dry_run, [_resolve(export, rules, recorded) for export in exports], log_path)
    if dry_run:
        return report
    with transaction.atomic():
        fixable = {outcome.export_id: outcome for outcome in report.fixable}
        locked = NarrativeExport.objects.select_for_update().filter(pk__in=fixable, template_snapshot__isnull=True)
        for export in locked.select_related("execution").order_by("id"):
            outcome = fixable[export.pk]
            snapshot = cast(WorkflowTemplateSnapshot, outcome.snapshot)  # a fixable outcome has one
            NarrativeExport.objects.filter(pk=export.pk).update(template_snapshot=snapshot)
            audit_record(
                action=EventType.EXPORT_SNAPSHOT_BACKFILLED,
                actor=actor,
                obj=export,
                team_id=export.execution.team_id,
                payload={
                    "template_snapshot_id": snapshot.pk,
                    "template_key": snapshot.template_key,
                    "template_version": snapshot.version,
                    "content_sha256": snapshot.content_sha256,
                    "source": outcome.source,
                    "export_created_at": export.created_at.isoformat(),
                },
            )
        anomalies = report.anomalies
        if anomalies:
            transaction.on_commit(lambda: _append_problems(log_path, anomalies))
    return report
