"""Clearance (docs/clearance.md): each member's clearance per team, managed by admin/compliance through the API;
downloads, signed links and signatures above it are refused with 403 clearance_insufficient and audited."""

from __future__ import annotations

import pytest

from approvals.services.ladders import stage_decide
from config.errors import PermissionDenied
from exports.models import ExecutionEvent, NarrativeExport
from governance.models import AuditEvent
from governance.services.clearance import clearance_level, clearance_set
from tests.approvals.factories import PASSWORD
from tests.approvals.test_services_ladders import active, sign_all

pytestmark = pytest.mark.django_db


def url(team, username):
    return f"/api/governance/teams/{team.slug}/members/{username}/clearance"


def test_clearance_api_reads_and_sets_with_audit(client_for, crew, team):
    client = client_for(crew.compliance)
    body = client.get(url(team, "author")).json()
    assert body == {"team": team.slug, "username": "author", "level": "Internal", "policy": "deny"}
    response = client.put(url(team, "author"), {"level": "Confidential"}, format="json")
    assert response.status_code == 200 and response.json()["level"] == "Confidential"
    assert clearance_level(user=crew.author, team_id=team.pk) == "Confidential"
    row = AuditEvent.objects.get(action="governance.clearance_changed")
    assert row.payload == {"user_id": crew.author.pk, "from": "Internal", "to": "Confidential"}
    assert client_for(crew.admin).put(url(team, "author"), {"level": "Restricted"}, format="json").status_code == 200


def test_clearance_api_refuses_bad_input_outsiders_and_other_roles(client_for, crew, team, other_team, member):
    client = client_for(crew.compliance)
    bad = client.put(url(team, "author"), {"level": "Secret"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    assert client.put(url(team, "author"), ["Restricted"], format="json").status_code == 400
    missing = client.get(url(team, "nobody"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "member_not_found"
    assert client.get(url(other_team, "author")).status_code == 404
    denied = client_for(crew.author).put(url(team, "author"), {"level": "Restricted"}, format="json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    assert client_for(crew.operator).get(url(team, "author")).status_code == 403
    assert not AuditEvent.objects.filter(action="governance.clearance_changed").exists()


def _denials(export):
    return ExecutionEvent.objects.filter(execution=export.execution, event_type="narrative_export.export_denied")


def test_signing_needs_a_clearance_at_the_exports_label(export, crew, team):
    NarrativeExport.objects.filter(pk=export.pk).update(classification="Confidential")
    with pytest.raises(PermissionDenied) as refused:
        stage_decide(
            export_id=export.pk, actor=crew.signer_for("reviewer"), decision="approve", password=PASSWORD,
            username=crew.signer_for("reviewer").username,
            expected_stage_id=active(export).pk,
        )  # fmt: skip
    assert refused.value.code == "clearance_insufficient"
    assert refused.value.details == {"classification": "Confidential", "clearance": "Internal"}
    (denial,) = _denials(export)
    assert denial.payload["action"] == "sign"
    assert AuditEvent.objects.filter(action="narrative_export.export_denied").count() == 1
    for role in ("reviewer", "qa_approver", "compliance"):
        clearance_set(team=team, username=crew.signer_for(role).username, level="Confidential", actor=crew.compliance)
    sign_all(NarrativeExport.objects.get(pk=export.pk), crew)


def test_downloads_and_links_above_the_clearance_are_refused_and_audited(
    client_for, crew, team, export, settings, django_capture_on_commit_callbacks
):
    from approvals.services.ladders import stage_decide  # noqa: F401 - the ladder signs through the service
    from exports.services.packaging import export_package

    settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow"]
    sign_all(export, crew)
    assert export_package(export_id=export.pk).value in {"packaged", "already_packaged"}
    NarrativeExport.objects.filter(pk=export.pk).update(classification="Confidential")
    base = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/artifact"
    reader = client_for(crew.author)
    for path in (base, base + "/link"):
        response = reader.get(path)
        assert response.status_code == 403 and response.json()["error"]["code"] == "clearance_insufficient"
    assert sorted(event.payload["action"] for event in _denials(export)) == ["download", "link"]
    clearance_set(team=team, username="author", level="Confidential", actor=crew.compliance)
    assert reader.get(base).status_code == 200
    assert reader.get(base + "/link").status_code == 200


def test_the_detail_page_above_the_clearance_shows_metadata_only(client_for, crew, team, export):
    from django.test import Client

    NarrativeExport.objects.filter(pk=export.pk).update(classification="Restricted")
    browser = Client()
    browser.force_login(crew.author)
    page = browser.get(f"/exports/{export.pk}/").content.decode()
    assert 'data-testid="clearance-withheld"' in page and '<article class="markdown">' not in page
    assert [event.payload["action"] for event in _denials(export)] == ["detail"]
    clearance_set(team=team, username="author", level="Restricted", actor=crew.compliance)
    page = browser.get(f"/exports/{export.pk}/").content.decode()
    assert 'data-testid="clearance-withheld"' not in page and '<article class="markdown">' in page


def test_relabelling_by_compliance_only_upwards_once_signed(client_for, crew, export):
    from approvals.services.classification import RELABELLED_EVENT

    path = f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/classification"
    denied = client_for(crew.author).put(path, {"classification": "Restricted"}, format="json")
    assert denied.status_code == 403
    officer = client_for(crew.compliance)  # one API client, re-authenticated
    bad = officer.put(path, {"classification": "Top secret"}, format="json")
    assert bad.status_code == 400
    lower = officer.put(path, {"classification": "Public"}, format="json")  # unsigned: down is allowed
    assert lower.status_code == 200 and lower.json() == {"export_id": export.pk, "classification": "Public"}
    for role in ("reviewer",):
        clearance_set(team=export.execution.team, username=crew.signer_for(role).username, level="Restricted",
                      actor=crew.compliance)  # fmt: skip
    stage_decide(
        export_id=export.pk, actor=crew.signer_for("reviewer"), decision="approve", password=PASSWORD,
        username=crew.signer_for("reviewer").username,
        expected_stage_id=active(export).pk,
    )  # fmt: skip
    assert officer.put(path, {"classification": "Confidential"}, format="json").status_code == 200
    refused = officer.put(path, {"classification": "Internal"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "relabel_downwards_after_signing"
    moves = [
        (event.payload["from"], event.payload["to"])
        for event in ExecutionEvent.objects.filter(execution=export.execution, event_type=RELABELLED_EVENT)
    ]
    assert moves == [("Internal", "Public"), ("Public", "Confidential")]
    assert AuditEvent.objects.filter(action=RELABELLED_EVENT).count() == 2
    other = client_for(crew.admin)
    assert (
        other.put(
            path.replace(f"/{export.pk}/", "/999999/"), {"classification": "Restricted"}, format="json"
        ).status_code
        == 404
    )  # noqa: E501
