"""The ``redact`` clearance policy (docs/clearance.md): above the reader's clearance, the detail API and page show the
stored narrative with the evidence above it replaced by a marker; downloads stay refused; stored data is untouched."""

from __future__ import annotations

import pytest
from django.test import Client

from exports.models import ExecutionEvent, NarrativeExport
from exports.narratives import fenced_block
from exports.withholding import manifest_withholding, narrative_withholding
from governance.models import Team
from governance.services.clearance import clearance_set

pytestmark = pytest.mark.django_db

SECRET = "the secret ingredient is saffron"


@pytest.fixture
def mixed_export(ladder_execution, crew, snapshot):
    from exports.services.evidence import notebook_entry_create
    from exports.services.narrative_exports import EvidenceRef, export_create

    plain = notebook_entry_create(execution=ladder_execution, actor=crew.author, title="Open recipe", body="flour")
    secret = notebook_entry_create(
        execution=ladder_execution,
        actor=crew.author,
        title="Hidden recipe",
        body=f"{SECRET}\n\n### Not a section\n",
        classification="Confidential",
    )
    refs = [EvidenceRef(kind="notebook_entry", id=plain.pk), EvidenceRef(kind="notebook_entry", id=secret.pk)]
    export = export_create(execution=ladder_execution, actor=crew.author, evidence=refs)
    return export, plain, secret


def _detail(export):
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}"


def test_redact_shows_the_narrative_without_the_evidence_above_the_clearance(client_for, crew, team, mixed_export):
    export, plain, secret = mixed_export
    assert export.classification == "Confidential" and SECRET in export.narrative_markdown
    stored = (export.narrative_markdown, export.narrative_digest)
    client = client_for(crew.author)
    assert client.get(_detail(export)).json()["narrative"] is None  # deny: metadata only
    Team.objects.filter(pk=team.pk).update(clearance_policy="redact")
    body = client.get(_detail(export)).json()
    assert body["withheld"] is False
    assert "WITHHELD: Confidential evidence" in body["narrative"] and "Open recipe" in body["narrative"]
    assert SECRET not in body["narrative"] and "Hidden recipe" not in body["narrative"]
    titles = {item["id"]: item["title"] for item in body["attachments"]}
    assert titles == {plain.pk: "Open recipe", secret.pk: "[WITHHELD: Confidential evidence]"}
    assert "Hidden" not in str(body["attachments"])
    browser = Client()
    browser.force_login(crew.author)
    page = browser.get(f"/exports/{export.pk}/").content.decode()
    assert 'data-testid="clearance-redacted"' in page and "Open recipe" in page
    assert SECRET not in page and "Hidden recipe" not in page
    link = client.get(f"{_detail(export)}/artifact/link")
    assert link.status_code == 403 and link.json()["error"]["code"] == "clearance_insufficient"
    actions = ExecutionEvent.objects.filter(
        execution=export.execution, event_type="narrative_export.export_denied"
    ).values_list("payload__action", flat=True)
    assert sorted(actions) == ["detail", "detail", "detail", "link"]
    export.refresh_from_db()
    assert (export.narrative_markdown, export.narrative_digest) == stored
    clearance_set(team=team, username="author", level="Confidential", actor=crew.compliance)
    assert SECRET in client.get(_detail(export)).json()["narrative"]


def test_redact_falls_back_to_metadata_when_the_exports_own_label_is_what_exceeds(client_for, crew, team, export):
    Team.objects.filter(pk=team.pk).update(clearance_policy="redact")
    NarrativeExport.objects.filter(pk=export.pk).update(classification="Restricted")
    body = client_for(crew.author).get(_detail(export)).json()
    assert body["withheld"] is True and body["narrative"] is None and body["attachments"] == []


def test_withholding_replaces_whole_sections_and_ignores_headings_inside_fences():
    fence = fenced_block("### 7\n- **Evidence id:** 7\n", "markdown")
    text = "\n".join(
        [
            "# Narrative dossier: t",
            "## Evidence: Files",
            "",
            "### a.csv",
            "",
            "- **Evidence id:** 7",
            "",
            "## Evidence: Notebook entries",
            "",
            "### kept",
            "",
            "- **Evidence id:** 8",
            "",
            *fence,
            "",
            "### gone",
            "",
            "- **Evidence id:** 7",
            "",
            *fence,
            "",
            "## Digests",
            "",
        ]
    )
    withheld = {("notebook_entry", "7"): "Restricted"}
    out = narrative_withholding(text, withheld)
    assert "### a.csv" in out and "### kept" in out and "### gone" not in out
    assert out.count("\\[WITHHELD: Restricted evidence\\]") == 1 and out.endswith("## Digests\n")
    assert out.count("- **Evidence id:** 7") == 2  # the file 7 and the fenced text of the kept entry
    assert narrative_withholding(text, {}) == text
    manifest = [{"kind": "notebook_entry", "id": 7, "title": "gone"}, {"kind": "file", "id": 7, "title": "a.csv"}]
    assert [row["title"] for row in manifest_withholding(manifest, withheld)] == [
        "[WITHHELD: Restricted evidence]",
        "a.csv",
    ]


def test_the_preview_withholds_evidence_above_the_readers_clearance(client_for, crew, team, ladder_execution, snapshot):
    from exports.services.evidence import notebook_entry_create

    notebook_entry_create(execution=ladder_execution, actor=crew.author, title="Open recipe", body="flour")
    notebook_entry_create(
        execution=ladder_execution, actor=crew.author, title="Hidden recipe", body=SECRET, classification="Restricted"
    )
    preview = f"/api/experiments/{ladder_execution.pk}/preview"
    client = client_for(crew.author)
    body = client.get(preview).json()
    assert body["narrative_markdown"] == "" and body["evidence"] == []
    (warning,) = [item for item in body["warnings"] if item["code"] == "clearance_withheld"]
    assert warning["details"] == {"withheld": 1, "clearance": "Internal", "policy": "deny"}
    Team.objects.filter(pk=team.pk).update(clearance_policy="redact")
    body = client.get(preview).json()
    assert "Open recipe" in body["narrative_markdown"] and "WITHHELD: Restricted evidence" in body["narrative_markdown"]
    assert SECRET not in str(body) and "Hidden recipe" not in str(body)
    assert sorted(item["title"] for item in body["evidence"]) == ["Open recipe", "[WITHHELD: Restricted evidence]"]
    clearance_set(team=team, username="author", level="Restricted", actor=crew.compliance)
    body = client.get(preview).json()
    assert SECRET in body["narrative_markdown"] and not [
        w for w in body["warnings"] if w["code"] == "clearance_withheld"
    ]
