"""Demo history for the dashboard and analytics: two weeks of ladders in two teams, preview summaries, overdue and
escalated stages and a few packaging retries, so that every panel shows something meaningful.

Past activity is produced by the real services run against a shifted clock (``django.utils.timezone.now`` is
moved to the moment each step happened), so timelines, audit rows, ladders and history agree with each other.
Idempotent: nothing is added once the first history execution exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalLadder, ApprovalStage
from approvals.services.ladders import stage_decide, stage_delegate
from approvals.services.monitor import sla_monitor_run
from approvals.services.signing_controls import CURRENT_STATEMENT, signer_certification, signer_certify
from exports.choices import PackagingRunStatus
from exports.events import EventType
from exports.models import Execution, NarrativeExport, PackagingRun
from exports.services.evidence import notebook_entry_create
from exports.services.executions import EventInput, events_append, execution_create, timeline_append
from exports.services.narrative_exports import EvidenceRef, export_create
from governance.demo import DEFAULT_STAGES, demo_team, demo_user
from governance.ladder import stage_due_at
from governance.services.teams import membership_grant, team_create
from textpolicy.utc import utc_iso

SECOND_TEAM = ("genomics", "Genomics Core")
GENOMICS_USERS = {
    "demo-genomics-scientist": ("Priya", "Shah", ["scientist"]),
    "demo-genomics-reviewer": ("Tomás", "Ibarra", ["reviewer"]),
    "demo-genomics-approver": ("Mei", "Tanaka", ["qa_approver"]),
    "demo-genomics-compliance": ("Jonas", "Berg", ["compliance"]),
}
MARKER = "[history]"

# (days ago the export was created, hours each signature took, or "reject" for a rejection at that stage)
HISTORY: list[tuple[float, list]] = [
    (12.5, [6, 20, 30]),
    (11.2, [30, 26, 50]),
    (9.8, [4, 60, 20]),
    (8.4, [12, "reject"]),
    (7.1, [22, 40, 80]),
    (5.6, [3, 10, 16]),
    (4.2, [28, 30, 44]),
    (2.9, [9, 52, 12]),
]
# Ladders still open: (hours ago the export was created, hours each completed signature took, delegate to?)
OPEN: list[tuple[float, list, str | None]] = [
    (110, [20], None),  # QA stage far past due: escalated
    (80, [20], None),  # QA stage overdue
    (50, [10], None),  # QA stage within SLA
    (30, [], "reviewer"),  # review overdue, delegated to a named reviewer
    (27, [], None),  # review overdue
    (8, [], None),  # review just started
    (150, [30, 40], None),  # compliance stage overdue
]


@contextmanager
def clock_at(moment: datetime) -> Iterator[None]:
    """Run real services as if it were ``moment``."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def _user(username: str, first: str, last: str, roles: list[str], team) -> object:
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@biolabs.local"}
    )
    if created:
        user.set_password(settings.DEMO_PASSWORD)
        user.save()
    if signer_certification(user=user) is None:  # demo signers have certified their signature (docs/part11.md)
        signer_certify(user=user, password=settings.DEMO_PASSWORD, statement_version=CURRENT_STATEMENT.version)
    for role in roles:
        membership_grant(user=user, team=team, role_key=role)
    return user


def _crew(team) -> dict[str, Any]:
    if team.slug == "biolabs":
        return {
            "author": demo_user("demo-scientist"),
            "reviewer": demo_user("demo-reviewer"),
            "qa_approver": demo_user("demo-approver"),
            "compliance": demo_user("demo-compliance"),
        }
    names = dict(zip(("author", "reviewer", "qa_approver", "compliance"), GENOMICS_USERS, strict=True))
    return {key: demo_user(username) for key, username in names.items()}


def _preview_summary(start: datetime) -> dict:
    """What a ladder preview projects: stages back to back, each due its SLA after it starts."""
    stages, at = [], start
    for position, blueprint in enumerate(DEFAULT_STAGES, start=1):
        due = stage_due_at(at, blueprint["sla_hours"])
        stages.append(
            {
                "position": position,
                "name": blueprint["name"],
                "required_role": blueprint["required_role"],
                "sla_hours": blueprint["sla_hours"],
                "activated_at": utc_iso(at),
                "projected_start": utc_iso(at),
                "projected_due": utc_iso(due),
            }
        )
        at = due
    return {"stages": stages, "warnings": []}


def _new_export(team, crew, *, title: str, created: datetime) -> NarrativeExport:
    author = crew["author"]
    with clock_at(created - timedelta(hours=3)):
        execution = execution_create(team=team, title=title, owner=author, protocol_template_key="demo-history")
        events_append(
            execution=execution,
            actor=author,
            events=[
                EventInput("session.started", {"bench": "B-7"}),
                EventInput("measurement.recorded", {"instrument": "PR-2200", "od600": 0.52}),
                EventInput("session.completed", {"ok": True}),
            ],
        )
        entry = notebook_entry_create(
            execution=execution, actor=author, title="Run notes", body="No deviations. Reagent lot RX-2291."
        )
    with clock_at(created - timedelta(minutes=20)), transaction.atomic():
        timeline_append(
            execution=execution,
            actor=author,
            events=[EventInput(EventType.PREVIEW_SUMMARY, _preview_summary(created))],
        )
    with clock_at(created):
        return export_create(
            execution=execution, actor=author, evidence=[EvidenceRef(kind=entry.kind, id=entry.pk)], notes="Demo."
        )


def _decide(export: NarrativeExport, crew, at: datetime, *, reject: bool = False) -> None:
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    with clock_at(at):
        stage_decide(
            export_id=export.pk,
            actor=crew[stage.required_role],
            username=crew[stage.required_role].username,
            decision="reject" if reject else "approve",
            password=settings.DEMO_PASSWORD,
            meaning=stage.reject_meaning if reject else stage.meaning,
            comment="Controls out of range: repeat the run." if reject else "",
            expected_stage_id=stage.pk,
        )


def _sign_through(export: NarrativeExport, crew, created: datetime, durations: list) -> datetime:
    at = created
    for hours in durations:
        if hours == "reject":
            _decide(export, crew, at + timedelta(hours=5), reject=True)
            break
        at = at + timedelta(hours=hours)
        _decide(export, crew, at)
    return at


def _packaging_retries(exports: list[NarrativeExport]) -> None:
    """Transient failures the worker retried past, as its runs record them."""
    codes = ["storage_unavailable", "storage_unavailable", "database_unavailable", "time_limit_exceeded"]
    runs = []
    for export, code in zip(exports, codes, strict=False):
        started = export.created_at + timedelta(days=1)
        runs.append(
            PackagingRun(
                export=export,
                attempt=1,
                status=PackagingRunStatus.RETRYING,
                worker="demo-worker@packaging-1",
                started_at=started,
                finished_at=started + timedelta(seconds=4),
                duration_ms=4000,
                error_code=code,
                error_message={
                    "storage_unavailable": "Object storage did not answer within 30 s.",
                    "database_unavailable": "Connection to PostgreSQL was reset.",
                    "time_limit_exceeded": "Soft time limit exceeded while archiving evidence.",
                }[code],
            )
        )
    PackagingRun.objects.bulk_create(runs)


def seed(stdout) -> None:
    if Execution.objects.filter(title__startswith=MARKER).exists():
        stdout.write("analytics history: already present")
        return
    team = demo_team()
    genomics = team_create(slug=SECOND_TEAM[0], name=SECOND_TEAM[1])
    for username, (first, last, roles) in GENOMICS_USERS.items():
        _user(username, first, last, roles, genomics)
    membership_grant(user=demo_user("demo-operator"), team=genomics, role_key="operator")
    membership_grant(user=demo_user("demo-admin"), team=genomics, role_key="admin")

    now = timezone.now()
    finished = []
    for index, (days_ago, durations) in enumerate(HISTORY):
        target = team if index % 2 == 0 else genomics
        crew = _crew(target)
        created = now - timedelta(days=days_ago)
        export = _new_export(target, crew, title=f"{MARKER} Potency assay — lot {300 + index}", created=created)
        _sign_through(export, crew, created, durations)
        finished.append(export)
    for index, (hours_ago, durations, delegate_to) in enumerate(OPEN):
        target = genomics if index % 3 == 1 else team
        crew = _crew(target)
        created = now - timedelta(hours=hours_ago)
        export = _new_export(target, crew, title=f"{MARKER} Release panel — run {70 + index}", created=created)
        at = _sign_through(export, crew, created, durations)
        if delegate_to:
            stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
            with clock_at(at + timedelta(hours=2)):
                stage_delegate(
                    export_id=export.pk,
                    stage_id=stage.pk,
                    actor=demo_user("demo-operator"),
                    assignee=crew[delegate_to].username,
                    reason="Covering while the usual reviewer is at the bench.",
                )
    _packaging_retries(
        [export for export in finished if ApprovalLadder.objects.filter(export=export, status="approved").exists()]
    )
    report = sla_monitor_run()
    stdout.write(
        f"analytics history: {len(HISTORY)} past and {len(OPEN)} open ladders in {team.slug} and {genomics.slug}; "
        f"monitor: {report.as_dict()}"
    )
