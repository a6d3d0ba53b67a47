"""Signing re-checks the stored narrative and evidence manifest against the digest about to be signed."""

import pytest

from approvals.models import ApprovalSignature, ApprovalStage
from approvals.services.ladders import NARRATIVE_INTEGRITY_AUDIT_ACTION, stage_decide
from config.errors import Conflict
from exports.models import NarrativeExport
from governance.models import AuditEvent
from tests.approvals.factories import PASSWORD

pytestmark = pytest.mark.django_db


def url(export) -> str:
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/approve"


def active_stage(export) -> ApprovalStage:
    return ApprovalStage.objects.get(ladder__export=export, status="in_progress")


def approve_body(export) -> dict:
    return {
        "decision": "approve",
        "password": PASSWORD,
        "meaning": "Reviewed",
        "comment": "",
        "expected_stage_id": active_stage(export).pk,
    }


def test_a_tampered_narrative_is_refused_with_409_and_audited(client_for, crew, export):
    tampered = export.narrative_markdown.replace("Dossier", "D0ssier")
    NarrativeExport.objects.filter(pk=export.pk).update(narrative_markdown=tampered)
    stage = active_stage(export)

    response = client_for(crew.reviewer).post(url(export), approve_body(export), format="json")

    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "narrative_integrity_failed"
    assert error["details"]["recorded_digest"] == export.narrative_digest
    assert error["details"]["recomputed_digest"] not in (None, export.narrative_digest)
    assert not ApprovalSignature.objects.exists()
    assert active_stage(export).pk == stage.pk  # nothing moved
    (row,) = AuditEvent.objects.filter(action=NARRATIVE_INTEGRITY_AUDIT_ACTION)
    assert row.object_id == str(export.pk) and row.actor_id == crew.reviewer.pk
    assert row.payload == {
        "code": "narrative_integrity_failed",
        "decision": "approve",
        "expected_stage_id": stage.pk,
        "recorded_digest": export.narrative_digest,
        "recomputed_digest": error["details"]["recomputed_digest"],
    }
    assert "D0ssier" not in str(row.payload)  # ids, codes and digests only, never the text


def test_a_tampered_evidence_manifest_is_refused(crew, export):
    forged = [{"kind": "file", "id": 1, "title": "x", "size": 1, "sha256": "0" * 64}]
    NarrativeExport.objects.filter(pk=export.pk).update(evidence_manifest=forged)
    with pytest.raises(Conflict) as caught:
        stage_decide(
            export_id=export.pk,
            actor=crew.reviewer,
            username=crew.reviewer.username,
            decision="reject",
            password=PASSWORD,
            comment="no",
            expected_stage_id=active_stage(export).pk,
        )
    assert caught.value.code == "narrative_integrity_failed"
    assert not ApprovalSignature.objects.exists()
    assert AuditEvent.objects.filter(action=NARRATIVE_INTEGRITY_AUDIT_ACTION).count() == 1


def test_an_intact_narrative_is_signed(client_for, crew, export):
    response = client_for(crew.reviewer).post(url(export), approve_body(export), format="json")
    assert response.status_code == 200, response.json()
    assert ApprovalSignature.objects.get().narrative_digest == export.narrative_digest
    assert not AuditEvent.objects.filter(action=NARRATIVE_INTEGRITY_AUDIT_ACTION).exists()
