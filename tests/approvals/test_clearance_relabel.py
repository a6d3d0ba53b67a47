"""Relabelling evidence (docs/clearance.md): compliance/admin only, audited, raising it raises the exports citing
it, and only upwards once a signed export cites it; the Django admin relabels exports through the same service."""

from __future__ import annotations

import pytest

from approvals.services.ladders import stage_decide
from exports.models import Evidence, ExecutionEvent, NarrativeExport
from governance.models import AuditEvent
from governance.services.clearance import clearance_set
from tests.approvals.factories import PASSWORD
from tests.approvals.test_services_ladders import active

pytestmark = pytest.mark.django_db


@pytest.fixture
def cited(ladder_execution, crew, snapshot):
    from exports.services.evidence import notebook_entry_create
    from exports.services.narrative_exports import EvidenceRef, export_create

    note = notebook_entry_create(execution=ladder_execution, actor=crew.author, title="Plate layout", body="A1-A3")
    export = export_create(
        execution=ladder_execution, actor=crew.author, evidence=[EvidenceRef(kind="notebook_entry", id=note.pk)]
    )
    return note, export


def _url(execution_id, evidence_id):
    return f"/api/experiment-console/sessions/{execution_id}/evidence/{evidence_id}/classification"


def _events(export, event_type):
    rows = ExecutionEvent.objects.filter(execution=export.execution, event_type=event_type).order_by("sequence")
    return [row.payload for row in rows]


def test_raising_evidence_raises_the_exports_citing_it(client_for, crew, cited):
    note, export = cited
    assert export.classification == "Internal"
    officer = client_for(crew.compliance)
    response = officer.put(_url(export.execution_id, note.pk), {"classification": "Confidential"}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "evidence_id": note.pk,
        "kind": "notebook_entry",
        "classification": "Confidential",
        "raised_exports": [export.pk],
    }
    assert Evidence.objects.get(pk=note.pk).classification == "Confidential"
    assert NarrativeExport.objects.get(pk=export.pk).classification == "Confidential"
    (relabelled,) = _events(export, "execution.evidence_relabelled")
    assert relabelled == {"evidence_id": note.pk, "kind": "notebook_entry", "from": "Internal", "to": "Confidential"}
    (raised,) = _events(export, "narrative_export.relabelled")
    assert raised["from"] == "Internal" and raised["to"] == "Confidential" and raised["evidence_id"] == note.pk
    assert AuditEvent.objects.filter(action="execution.evidence_relabelled").count() == 1
    lower = officer.put(_url(export.execution_id, note.pk), {"classification": "Public"}, format="json")
    assert lower.status_code == 200 and lower.json()["raised_exports"] == []  # unsigned: down is allowed
    assert NarrativeExport.objects.get(pk=export.pk).classification == "Confidential"  # exports are never lowered


def test_evidence_relabelling_refuses_bad_input_other_roles_and_unknown_evidence(client_for, crew, cited, other_team):
    from exports.services.executions import execution_create

    note, export = cited
    path = _url(export.execution_id, note.pk)
    denied = client_for(crew.author).put(path, {"classification": "Restricted"}, format="json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    officer = client_for(crew.admin)
    bad = officer.put(path, {"classification": "Secret"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    missing = officer.put(_url(export.execution_id, 999999), {"classification": "Restricted"}, format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "evidence_not_found"
    elsewhere = execution_create(team=other_team, title="Theirs", owner=crew.author, protocol_template_key="stability")
    hidden = officer.put(_url(elsewhere.pk, note.pk), {"classification": "Restricted"}, format="json")
    assert hidden.status_code == 404
    assert Evidence.objects.get(pk=note.pk).classification == "Internal"
    assert not AuditEvent.objects.filter(action="execution.evidence_relabelled").exists()


def test_evidence_cited_by_a_signed_export_only_goes_up(client_for, crew, team, cited):
    note, export = cited
    reviewer = crew.signer_for("reviewer")
    clearance_set(team=team, username=reviewer.username, level="Restricted", actor=crew.compliance)
    stage_decide(
        export_id=export.pk,
        actor=reviewer,
        decision="approve",
        password=PASSWORD,
        expected_stage_id=active(export).pk,
        username=reviewer.username,
    )
    officer = client_for(crew.compliance)
    refused = officer.put(_url(export.execution_id, note.pk), {"classification": "Public"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "relabel_downwards_after_signing"
    raised = officer.put(_url(export.execution_id, note.pk), {"classification": "Restricted"}, format="json")
    assert raised.status_code == 200 and raised.json()["raised_exports"] == [export.pk]
    assert NarrativeExport.objects.get(pk=export.pk).classification == "Restricted"


def _admin_relabel(user, export, label):
    from django.test import Client
    from django.urls import reverse

    user.is_staff, user.is_superuser = True, True
    user.save()
    browser = Client()
    browser.force_login(user)
    body = {"action": f"relabel_{label.lower()}", "_selected_action": [export.pk]}
    return browser.post(reverse("admin:exports_narrativeexport_changelist"), body, follow=True)


def test_the_admin_relabels_exports_through_the_same_rules(crew, cited):
    note, export = cited
    Evidence.objects.filter(pk=note.pk).update(classification="Confidential")
    page = _admin_relabel(crew.compliance, export, "Public")
    assert page.status_code == 200 and "cannot be labelled lower" in page.content.decode()
    assert NarrativeExport.objects.get(pk=export.pk).classification == "Internal"
    _admin_relabel(crew.compliance, export, "Restricted")
    assert NarrativeExport.objects.get(pk=export.pk).classification == "Restricted"
    (moved,) = _events(export, "narrative_export.relabelled")
    assert (moved["from"], moved["to"]) == ("Internal", "Restricted")
    outsider_page = _admin_relabel(crew.author, export, "Confidential")  # a superuser without the team role
    assert "You need one of the roles" in outsider_page.content.decode()
    assert NarrativeExport.objects.get(pk=export.pk).classification == "Restricted"
