"""The execution page, its evidence forms and the evidence picker that creates an export."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from approvals.models import ApprovalStage
from approvals.services.ladders import stage_decide
from exports.models import Evidence, NarrativeExport
from exports.services.evidence import notebook_entry_create
from exports.services.executions import EventInput, events_append
from tests.approvals.factories import PASSWORD, export_with_ladder
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def entry(ladder_execution, crew):
    return notebook_entry_create(execution=ladder_execution, actor=crew.author, title="Bench notes", body="# Day 1\n")


def new_page(execution) -> str:
    return f"/executions/{execution.pk}/exports/new"


def test_the_execution_page_shows_timeline_evidence_exports_and_the_forms(crew, ladder_execution, entry, export):
    events_append(execution=ladder_execution, actor=crew.author, events=[EventInput("step.recorded", {"step": "mix"})])
    response = logged_in(crew.author).get(f"/executions/{ladder_execution.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Bench notes" in html and "Notebook entry" in html  # evidence, with its kind's label
    assert "step.recorded" in html and "mix" in html  # the timeline with its payload
    assert f"/exports/{export.pk}/" in html  # the export of this execution
    assert 'data-testid="upload-form"' in html and 'data-testid="notebook-form"' in html
    assert f'href="{new_page(ladder_execution)}"' in html


def test_readers_see_no_write_forms(crew, ladder_execution):
    html = logged_in(crew.auditor).get(f"/executions/{ladder_execution.pk}/").content.decode()
    assert 'data-testid="upload-form"' not in html and 'data-testid="new-export"' not in html


def test_another_teams_execution_is_a_404_on_every_page(ladder_execution, other_team):
    outsider = logged_in(member_of(other_team, "scientist", "admin", username="outsider"))
    base = f"/executions/{ladder_execution.pk}"
    assert outsider.get(f"{base}/").status_code == 404
    assert outsider.get(f"{base}/exports/new").status_code == 404
    assert outsider.post(f"{base}/exports/new", {"action": "create"}).status_code == 404
    assert outsider.post(f"{base}/notebook", {"notebook-title": "x", "notebook-body": "y"}).status_code == 404
    assert outsider.post(f"{base}/evidence", {"upload-file": SimpleUploadedFile("a.csv", b"1")}).status_code == 404
    assert not Evidence.objects.filter(execution=ladder_execution).exists()


def test_a_notebook_entry_is_added_from_the_page(crew, ladder_execution):
    client = logged_in(crew.author)
    url = f"/executions/{ladder_execution.pk}/notebook"
    response = client.post(
        url, {"notebook-title": "Observations", "notebook-body": "Cloudy.", "notebook-classification": "Confidential"}
    )
    assert response.status_code == 302
    entry = Evidence.objects.get(execution=ladder_execution)
    assert (entry.kind, entry.title, entry.classification, entry.size) == (
        "notebook_entry",
        "Observations",
        "Confidential",
        7,
    )

    response = client.post(url, {"notebook-title": "", "notebook-body": "x", "notebook-classification": "Internal"})
    assert response.status_code == 400 and "This field is required." in response.content.decode()


def test_a_file_is_uploaded_from_the_page_with_its_digest(crew, ladder_execution):
    client = logged_in(crew.author)
    upload = SimpleUploadedFile("ПЦР-данные.csv", b"a,b\n1,2\n", content_type="text/csv")
    response = client.post(
        f"/executions/{ladder_execution.pk}/evidence", {"upload-file": upload, "upload-classification": "Internal"}
    )
    assert response.status_code == 302
    evidence = Evidence.objects.get(execution=ladder_execution)
    assert (evidence.kind, evidence.original_filename, evidence.size) == ("file", "ПЦР-данные.csv", 8)
    assert evidence.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_an_upload_over_the_limit_is_refused_in_the_page(crew, ladder_execution, settings):
    settings.DOSSIER_MAX_UPLOAD_BYTES = 10
    upload = SimpleUploadedFile("big.bin", b"x" * 100_000)
    response = logged_in(crew.author).post(
        f"/executions/{ladder_execution.pk}/evidence", {"upload-file": upload, "upload-classification": "Internal"}
    )
    assert response.status_code == 413
    assert "larger than the limit of 10 bytes" in response.content.decode()
    assert not Evidence.objects.exists()


def test_a_reader_may_not_upload_or_write_entries(crew, ladder_execution):
    client = logged_in(crew.auditor)
    response = client.post(
        f"/executions/{ladder_execution.pk}/notebook",
        {"notebook-title": "t", "notebook-body": "b", "notebook-classification": "Internal"},
    )
    assert response.status_code == 403 and "to write notebook entries" in response.content.decode()
    response = client.post(
        f"/executions/{ladder_execution.pk}/evidence", {"upload-file": SimpleUploadedFile("a.csv", b"1")}
    )
    assert response.status_code == 403
    assert not Evidence.objects.exists()


def test_the_picker_lists_evidence_and_creates_the_export(crew, ladder_execution, entry, snapshot):
    client = logged_in(crew.author)
    html = client.get(new_page(ladder_execution)).content.decode()
    assert f'value="notebook_entry:{entry.pk}"' in html and "Bench notes" in html

    response = client.post(
        new_page(ladder_execution), {"evidence": [f"notebook_entry:{entry.pk}"], "action": "create", "notes": "First"}
    )
    export = NarrativeExport.objects.get(execution=ladder_execution)
    assert response.status_code == 302 and response["Location"] == f"/exports/{export.pk}/"
    assert [a.evidence_id for a in export.attachments.all()] == [entry.pk]
    assert export.notes == "First" and export.status == "awaiting_approval"
    assert ApprovalStage.objects.filter(ladder__export=export).count() == 3


def test_the_preview_shows_narrative_and_ladder_without_creating(crew, ladder_execution, entry, snapshot):
    response = logged_in(crew.author).post(
        new_page(ladder_execution), {"evidence": [f"notebook_entry:{entry.pk}"], "action": "preview"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="live-preview"' in html and "Scientific review" in html
    assert "Bench notes" in html[html.index('data-testid="preview-narrative"') :]
    assert not NarrativeExport.objects.exists()


def test_evidence_of_another_execution_is_refused_in_the_form(crew, team, ladder_execution, snapshot):
    from exports.services.executions import execution_create

    elsewhere = execution_create(team=team, title="Other run", owner=crew.author)
    foreign = notebook_entry_create(execution=elsewhere, actor=crew.author, title="Not here", body="x")
    response = logged_in(crew.author).post(
        new_page(ladder_execution), {"evidence": [f"notebook_entry:{foreign.pk}"], "action": "create"}
    )
    assert response.status_code == 400
    assert "is not one of the available choices" in response.content.decode()
    assert not NarrativeExport.objects.exists()


def test_no_published_template_is_a_refusal_in_the_form_not_a_500(crew, ladder_execution, entry):
    response = logged_in(crew.author).post(new_page(ladder_execution), {"action": "create"})
    assert response.status_code == 409
    assert "No published workflow template" in response.content.decode()


def test_a_reader_may_preview_but_not_create(crew, ladder_execution, snapshot):
    client = logged_in(crew.auditor)
    assert 'value="create"' not in client.get(new_page(ladder_execution)).content.decode()
    response = client.post(new_page(ladder_execution), {"action": "create"})
    assert response.status_code == 403 and "to create exports" in response.content.decode()
    assert not NarrativeExport.objects.exists()


def test_a_rejected_export_starts_a_new_version_with_its_evidence(crew, ladder_execution, entry, snapshot):
    client = logged_in(crew.author)
    client.post(
        new_page(ladder_execution), {"evidence": [f"notebook_entry:{entry.pk}"], "action": "create", "notes": "v1"}
    )
    first = NarrativeExport.objects.get(execution=ladder_execution)
    stage = ApprovalStage.objects.get(ladder__export=first, status="in_progress")
    stage_decide(
        export_id=first.pk,
        actor=crew.reviewer,
        username=crew.reviewer.username,
        decision="reject",
        password=PASSWORD,
        meaning="Rejected",
        comment="Missing data",
        expected_stage_id=stage.pk,
    )
    detail = client.get(f"/exports/{first.pk}/").content.decode()
    link = f"{new_page(ladder_execution)}?from={first.pk}"
    assert f'href="{link}"' in detail

    form = client.get(link).content.decode()
    assert f'value="notebook_entry:{entry.pk}" id="evidence-1" checked' in form
    assert f'name="from" value="{first.pk}"' in form

    response = client.post(
        new_page(ladder_execution), {"evidence": [f"notebook_entry:{entry.pk}"], "from": first.pk, "action": "create"}
    )
    second = NarrativeExport.objects.get(execution=ladder_execution, version=2)
    assert response["Location"] == f"/exports/{second.pk}/"
    assert 'data-testid="new-version"' not in client.get(f"/exports/{second.pk}/").content.decode()


def test_the_execution_page_reads_a_fixed_number_of_queries(
    crew, ladder_execution, snapshot, django_assert_max_num_queries
):
    client = logged_in(crew.author)

    def grow():
        notebook_entry_create(execution=ladder_execution, actor=crew.author, title="More", body="x")
        events_append(execution=ladder_execution, actor=crew.author, events=[EventInput("step.recorded", {"n": 1})])
        export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)

    grow()
    with CaptureQueriesContext(connection) as first:
        assert client.get(f"/executions/{ladder_execution.pk}/").status_code == 200
    for _ in range(4):
        grow()
    with django_assert_max_num_queries(len(first.captured_queries)):
        assert client.get(f"/executions/{ladder_execution.pk}/").status_code == 200
