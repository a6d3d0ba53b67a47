"""Clearance in the API (docs/clearance.md): export list and detail above the reader's clearance answer metadata only
(and record the refusal); the team's clearance policy is read and set by admin/compliance, audited."""

from __future__ import annotations

import pytest

from exports.models import ExecutionEvent, ExportAttachment, NarrativeExport
from governance.models import AuditEvent, Team
from governance.services.clearance import clearance_set

pytestmark = pytest.mark.django_db


def _exports_url(export):
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative"


def _denials(export):
    return ExecutionEvent.objects.filter(execution=export.execution, event_type="narrative_export.export_denied")


def _attach(export, title):
    ExportAttachment.objects.create(
        export=export, kind="file", title=title, size=3, sha256="0" * 64, bundle_path=f"files/{title}"
    )


def test_export_detail_above_the_clearance_is_metadata_only_and_recorded(client_for, crew, team, export):
    _attach(export, "secret-assay.csv")
    NarrativeExport.objects.filter(pk=export.pk).update(classification="Confidential", notes="secret plan")
    client = client_for(crew.author)
    body = client.get(f"{_exports_url(export)}/{export.pk}").json()
    assert body["withheld"] is True and body["notes"] == "" and body["attachments"] == []
    assert body["id"] == export.pk and body["classification"] == "Confidential" and body["status"]
    assert "secret plan" not in str(body)
    (denial,) = _denials(export)
    expected = {"action": "detail", "classification": "Confidential", "clearance": "Internal"}
    assert denial.payload | expected == denial.payload
    assert AuditEvent.objects.filter(action="narrative_export.export_denied").count() == 1
    clearance_set(team=team, username="author", level="Confidential", actor=crew.compliance)
    body = client.get(f"{_exports_url(export)}/{export.pk}").json()
    assert body["withheld"] is False and body["notes"] == "secret plan"
    assert [item["title"] for item in body["attachments"]] == ["secret-assay.csv"]
    assert _denials(export).count() == 1


def test_export_list_withholds_only_the_exports_above_the_clearance(client_for, crew, export):
    NarrativeExport.objects.filter(pk=export.pk).update(notes="visible notes")
    _attach(export, "assay.csv")
    client = client_for(crew.author)
    (row,) = client.get(_exports_url(export)).json()["results"]
    assert row["withheld"] is False and row["notes"] == "visible notes" and row["attachments"]
    assert not _denials(export).exists()
    NarrativeExport.objects.filter(pk=export.pk).update(classification="Restricted")
    (row,) = client.get(_exports_url(export)).json()["results"]
    assert row["withheld"] is True and row["notes"] == "" and row["attachments"] == []
    assert [event.payload["action"] for event in _denials(export)] == ["list"]


def _policy_url(team):
    return f"/api/governance/teams/{team.slug}/clearance-policy"


def test_clearance_policy_is_read_and_set_by_managers_with_audit(client_for, crew, team):
    client = client_for(crew.compliance)
    assert client.get(_policy_url(team)).json() == {"team": team.slug, "policy": "deny"}
    response = client.put(_policy_url(team), {"policy": "redact"}, format="json")
    assert response.status_code == 200 and response.json() == {"team": team.slug, "policy": "redact"}
    assert Team.objects.get(pk=team.pk).clearance_policy == "redact"
    row = AuditEvent.objects.get(action="governance.clearance_policy_changed")
    assert row.payload["from"] == "deny" and row.payload["to"] == "redact"
    assert client_for(crew.admin).put(_policy_url(team), {"policy": "redact"}, format="json").status_code == 200
    assert AuditEvent.objects.filter(action="governance.clearance_policy_changed").count() == 1


def test_clearance_policy_refuses_bad_input_other_roles_and_other_teams(client_for, crew, team, other_team):
    client = client_for(crew.compliance)
    bad = client.put(_policy_url(team), {"policy": "shred"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    assert client.put(_policy_url(team), ["redact"], format="json").status_code == 400
    assert client.get(_policy_url(other_team)).status_code == 404
    assert client.put(_policy_url(other_team), {"policy": "redact"}, format="json").status_code == 404
    denied = client_for(crew.author).put(_policy_url(team), {"policy": "redact"}, format="json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    assert client_for(crew.operator).get(_policy_url(team)).status_code == 403
    assert Team.objects.get(pk=team.pk).clearance_policy == "deny"
    assert not AuditEvent.objects.filter(action="governance.clearance_policy_changed").exists()


def test_the_team_admin_changes_the_policy_through_the_service(crew, team, rf):
    from django.contrib.admin.sites import site
    from django.forms.models import model_to_dict

    team_admin = site._registry[Team]
    request = rf.post("/admin/")
    crew.admin.is_staff = crew.admin.is_superuser = True
    request.user = crew.admin
    Form = team_admin.get_form(request, team, change=True)
    form = Form(data={**model_to_dict(team), "clearance_policy": "redact"}, instance=team)
    assert form.is_valid(), form.errors
    assert form.changed_data == ["clearance_policy"]
    team_admin.save_model(request, form.save(commit=False), form, change=True)
    assert Team.objects.get(pk=team.pk).clearance_policy == "redact"
    (row,) = AuditEvent.objects.filter(action="governance.clearance_policy_changed")
    assert (row.payload["from"], row.payload["to"]) == ("deny", "redact")


def test_the_author_of_an_export_above_their_clearance_gets_its_metadata_only(client_for, crew, export):
    response = client_for(crew.author).post(
        _exports_url(export),
        {"evidence": [], "notes": "secret plan", "classification": "Confidential"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["withheld"] is True and body["notes"] == "" and body["classification"] == "Confidential"
    assert "secret plan" not in str(body)
    created = NarrativeExport.objects.get(pk=body["id"])
    assert created.notes == "secret plan"  # stored in full; only the answer is withheld
    assert [event.payload["action"] for event in _denials(created) if event.payload["export_id"] == created.pk] == [
        "create"
    ]
