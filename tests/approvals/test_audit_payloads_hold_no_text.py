"""Audit payloads hold ids, codes, digests and timestamps, never user-written text (docs/audit-trail.md, "What a
payload holds"): the main flows are driven with a planted marker in every text a person can write; no audit row
carries it, the records that own the text still do, and the chain verifies."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalSignature, ApprovalStage, StageEscalation
from approvals.services.escalations import escalation_record
from approvals.services.ladders import stage_decide, stage_delegate, stage_reset
from exports.events import EventType
from exports.models import Evidence, Execution, ExecutionEvent
from exports.services.evidence import notebook_entry_create, structured_evidence_create
from exports.services.executions import (
    EventInput,
    coaching_note_record,
    events_append,
    execution_create,
    override_record,
)
from exports.services.narrative_exports import EvidenceRef, export_create
from governance.models import AuditEvent, GovernanceBaseline, GovernanceBaselineEvent, WorkflowTemplate
from governance.services.audit import audit_chain_verify, audit_payload, audit_record, text_digest
from governance.services.baselines import baseline_reject, baseline_submit
from governance.services.templates import template_create, template_publish
from tests.approvals.factories import PASSWORD, STAGES

pytestmark = pytest.mark.django_db

TOKEN = "QZXMARK"  # found in no code, username or digest
MARK = f"Plate 7 relabelled {TOKEN}: call me"


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _audit_rows_with_marker() -> list[tuple[str, str]]:
    return [(row.action, _text(row.payload)) for row in AuditEvent.objects.all() if TOKEN in _text(row.payload)]


def _stage(export, index: int) -> ApprovalStage:
    return ApprovalStage.objects.get(ladder__export=export, index=index)


def _run_execution_flows(team, crew, snapshot) -> Execution:
    execution = execution_create(team=team, title=MARK, owner=crew.author, protocol_template_key=snapshot.template_key)
    events_append(
        execution=execution,
        actor=crew.author,
        events=[EventInput("lab.reading", {"note": MARK, "well": "A1", "nested": {"free": [MARK]}})],
    )
    notebook_entry_create(execution=execution, actor=crew.author, title=MARK, body=f"# {MARK}\n")
    structured_evidence_create(
        execution=execution, actor=crew.author, kind="qc_metric", title=MARK, data={"comment": MARK, "cv": 1.5}
    )
    coaching_note_record(execution=execution, actor=crew.operator, body=MARK)
    override_record(execution=execution, actor=crew.admin, step="qc", field="cv", value=MARK, reason=MARK)
    return execution


def _run_ladder_flows(export, crew) -> None:
    first = _stage(export, 0)
    stage_decide(
        export_id=export.pk, actor=crew.reviewer, decision="approve", password=PASSWORD, comment=MARK,
        username=crew.reviewer.username,
        expected_stage_id=first.pk,
    )  # fmt: skip
    second = _stage(export, 1)
    stage_delegate(export_id=export.pk, stage_id=second.pk, actor=crew.operator, assignee="qa", reason=MARK)
    ApprovalStage.objects.filter(pk=second.pk).update(due_at=timezone.now() - timedelta(hours=2))
    escalation_record(
        export_id=export.pk, actor=crew.operator, stage_id=second.pk, contacted=MARK, outcome="acknowledged"
    )
    stage_reset(export_id=export.pk, stage_id=first.pk, actor=crew.admin, reason=MARK)
    stage_decide(
        export_id=export.pk, actor=crew.reviewer, decision="reject", password=PASSWORD, comment=MARK,
        username=crew.reviewer.username,
        expected_stage_id=_stage(export, 0).pk,
    )  # fmt: skip


def _run_governance_flows(team, crew, execution) -> None:
    template = template_create(
        actor=crew.admin, team=team, name=MARK, template_key="marked-release", description=MARK, stages=STAGES,
        permitted_roles=["reviewer", "qa_approver", "compliance"],
    )  # fmt: skip
    template_publish(template=template, actor=crew.admin)
    baseline = baseline_submit(
        actor=crew.author, execution_id=execution.pk, title=MARK, reviewers=["rev"], summary=MARK
    )
    baseline_reject(baseline_id=baseline.pk, actor=crew.reviewer, comment=MARK)


def test_no_audit_payload_holds_user_written_text(team, crew, snapshot):
    execution = _run_execution_flows(team, crew, snapshot)
    notebook = Evidence.objects.get(execution=execution, kind="notebook_entry")
    export = export_create(
        execution=execution, actor=crew.author, evidence=[EvidenceRef(kind="notebook_entry", id=notebook.pk)],
        notes=MARK,
    )  # fmt: skip
    _run_ladder_flows(export, crew)
    _run_governance_flows(team, crew, execution)

    actions = set(AuditEvent.objects.values_list("action", flat=True))
    driven = {
        EventType.EXECUTION_CREATED, EventType.EXECUTION_EVENTS_APPENDED, "evidence.created",
        EventType.EXECUTION_COACHING_NOTE_RECORDED, EventType.EXECUTION_OVERRIDE_RECORDED, EventType.EXPORT_CREATED,
        EventType.STAGE_COMPLETED, EventType.STAGE_DELEGATED, EventType.ESCALATION_RECORDED, EventType.STAGE_RESET,
        "workflow_template.created", "workflow_template.published", "governance.baseline.submitted",
        "governance.baseline.rejected",
    }  # fmt: skip
    assert driven <= actions, sorted(driven - actions)
    assert _audit_rows_with_marker() == []

    # The records that own the text keep it in full.
    timeline = _text(list(ExecutionEvent.objects.filter(execution=execution).values_list("payload", flat=True)))
    assert timeline.count(TOKEN) >= 6  # client event, coaching note, override value and reason, delegation, reset
    assert Execution.objects.get(pk=execution.pk).title == MARK
    assert StageEscalation.objects.get(ladder__export=export).contacted == MARK
    assert ApprovalSignature.objects.filter(ladder__export=export, comment=MARK).count() == 2
    assert WorkflowTemplate.objects.filter(name=MARK, description=MARK).exists()
    assert GovernanceBaseline.objects.get(title=MARK).summary == MARK
    assert TOKEN in _text(list(GovernanceBaselineEvent.objects.values_list("payload", flat=True)))

    # The audit rows carry the digests of the text instead.
    delegated = AuditEvent.objects.get(action=EventType.STAGE_DELEGATED)
    assert delegated.payload["reason"] == text_digest(MARK) and delegated.payload["to_assignee"] == "qa"
    assert AuditEvent.objects.get(action=EventType.EXECUTION_CREATED).payload["title"] == text_digest(MARK)

    assert audit_chain_verify(record=False).ok


def test_the_payload_rule():
    payload = {
        "stage_id": 4, "ok": True, "ratio": 0.5, "status": "approved", "signed_at": "2026-12-01T06:15:02.123456Z",
        "narrative_digest": "ab" * 32, "reason": "rotation", "note": None, "signer": "rev",
        "detail": {"text": "two words", "codes": ["a_b", "x y"]}, "value": {"well": "A1", "reading": 3},
        "message": ["free", "list"], "long": "x" * 201,
    }  # fmt: skip
    stored = audit_payload(payload)
    assert {key: stored[key] for key in ("stage_id", "ok", "ratio", "status", "signed_at", "narrative_digest")} == {
        key: payload[key] for key in ("stage_id", "ok", "ratio", "status", "signed_at", "narrative_digest")
    }
    assert stored["reason"] == text_digest("rotation")  # a declared free-text key, even when one word
    assert stored["note"] is None and stored["signer"] == "rev"
    assert stored["detail"] == {"text": text_digest("two words"), "codes": ["a_b", text_digest("x y")]}
    assert stored["value"]["keys"] == ["reading", "well"] and set(stored["value"]) == {"sha256", "keys"}
    assert set(stored["message"]) == {"sha256"}
    assert stored["long"] == text_digest("x" * 201)
    assert audit_payload(stored) == stored  # digests are kept as they are
    # The digest is of the UTF-8 bytes; the length counts characters.
    assert text_digest("é") == {"sha256": hashlib.sha256(b"\xc3\xa9").hexdigest(), "length": 1}


def test_audit_record_applies_the_rule_to_every_row(team):
    row = audit_record(action="test.marked", team_id=team.pk, payload={"comment": MARK, "id": 7})
    row.refresh_from_db()
    assert row.payload == {"comment": text_digest(MARK), "id": 7}
    assert audit_chain_verify(record=False).ok
