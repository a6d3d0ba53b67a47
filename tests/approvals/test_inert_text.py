"""User text carrying bidi overrides, zero-width characters and ANSI escapes, end to end: the narrative an approver
signs, the packaged narrative.md, the export page and verify_export's output all show them as visible escapes
(docs/text-policy.md)."""

import html
import tarfile
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from approvals.models import ApprovalStage
from approvals.services.ladders import stage_decide
from exports.bundle import extract_bundle
from exports.formats import BUNDLE_FORMAT_VERSION
from exports.models import ExportArtifact, NarrativeExport
from exports.services.evidence import notebook_entry_create
from exports.services.executions import EventInput, events_append, execution_create
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.services.packaging import PackagingOutcome, export_package
from tests.approvals.factories import PASSWORD
from tests.stored import plaintext_path

pytestmark = pytest.mark.django_db

HOSTILE = "safe\u202eexe.txt\u200bhidden\x1b[31mred\x1b[0m"
RAW = ("\u202e", "\u200b", "\x1b")
SHOWN = ("<U+202E>", "<U+200B>", "<U+001B>")


def run(*args) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue() + err.getvalue()


def assert_inert(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} reached the output"
    for shown in SHOWN:
        assert shown in text, f"{shown} is missing"


@pytest.fixture
def hostile_export(team, crew, snapshot):
    execution = execution_create(team=team, title=f"Run {HOSTILE}", owner=crew.author)
    events = events_append(
        execution=execution,
        actor=crew.author,
        events=[EventInput("step.recorded", {"note": HOSTILE, "nested": {HOSTILE: [HOSTILE]}})],
    )
    entry = notebook_entry_create(
        execution=execution, actor=crew.author, title=f"Notes {HOSTILE}", body=f"# Bench\n\n```\n{HOSTILE}\n```\n"
    )
    return export_create(
        execution=execution,
        actor=crew.author,
        evidence=[EvidenceRef("notebook_entry", entry.pk), EvidenceRef("timeline_event", events[0].pk)],
        notes=f"Reviewer note {HOSTILE}",
    )


def sign_all(export, crew) -> None:
    for role in ("reviewer", "qa_approver", "compliance"):
        stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
        stage_decide(
            export_id=export.pk,
            actor=crew.signer_for(role),
            username=crew.signer_for(role).username,
            decision="approve",
            password=PASSWORD,
            meaning=f"Approved {HOSTILE}",
            comment=f"Checked {HOSTILE}",
            expected_stage_id=stage.pk,
        )


def test_the_signed_narrative_shows_escapes_inline_and_in_fenced_blocks(hostile_export):
    text = hostile_export.narrative_markdown
    assert_inert(text)
    title_line, notes_block = text.splitlines()[0], text[text.index("Reviewer note") :]
    assert title_line.startswith("# Narrative dossier: Run safe<U+202E>exe.txt<U+200B>hidden<U+001B>")
    assert notes_block.startswith("Reviewer note safe<U+202E>")
    assert "safe<U+202E>exe.txt<U+200B>hidden<U+001B>[31mred" in text  # notebook body, inside its fence


def test_packaged_narrative_and_verify_export_output_are_inert(hostile_export, crew, tmp_path):
    sign_all(hostile_export, crew)
    assert export_package(export_id=hostile_export.pk) == PackagingOutcome.PACKAGED
    artifact = ExportArtifact.objects.get(export=hostile_export)
    assert artifact.format_version == BUNDLE_FORMAT_VERSION
    bag = extract_bundle(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path / "bag")
    narrative = (bag / "data" / "narrative.md").read_text()
    assert_inert(narrative)
    record = narrative[narrative.index("## Approval record") :]
    assert "Checked safe<U+202E>exe.txt<U+200B>hidden<U+001B>" in record  # signature comments too
    assert f"Bundle-Format-Version: {BUNDLE_FORMAT_VERSION}\n" in (bag / "bag-info.txt").read_text()

    code, output = run("verify_export", str(hostile_export.pk))
    assert code == 0, output
    assert_inert(output)
    assert "narrative: Narrative dossier: Run safe<U+202E>exe.txt<U+200B>hidden<U+001B>" in output


def test_the_export_page_shows_escapes(hostile_export, crew):
    client = Client()
    client.force_login(crew.reviewer)
    content = client.get(f"/exports/{hostile_export.pk}/").content.decode()
    for raw in RAW:
        assert raw not in content
    assert "&lt;U+202E&gt;" in content
    text = html.unescape(content)
    assert_inert(text)
    assert "Run safe<U+202E>exe.txt<U+200B>hidden<U+001B>[31mred" in text  # the page's own heading


def test_the_page_escapes_a_narrative_stored_before_the_policy(hostile_export, crew):
    """Narratives rendered by earlier releases may hold the raw characters; the page still shows them inert."""
    NarrativeExport.objects.filter(pk=hostile_export.pk).update(narrative_markdown=f"# Old {HOSTILE}\n")
    client = Client()
    client.force_login(crew.reviewer)
    content = client.get(f"/exports/{hostile_export.pk}/").content.decode()
    article = content[content.index('<article class="markdown">') :]
    assert "Old safe&lt;U+202E&gt;exe.txt&lt;U+200B&gt;hidden&lt;U+001B&gt;" in article
    for raw in RAW:
        assert raw not in content


def test_a_member_name_with_escape_sequences_is_a_problem_shown_escaped(tmp_path):
    fake = "dossier-1-v1/data/\x1b[2K\rvalid: all OK \u202etxt.md"
    archive = tmp_path / "crafted.tar.gz"
    payload = tmp_path / "payload"
    payload.write_bytes(b"x\n")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="dossier-1-v1/bagit.txt")
        tar.add(payload, arcname=fake)
    code, output = run("verify_export", str(archive))
    assert code == 3
    assert "\x1b" not in output and "\r" not in output and "\u202e" not in output
    assert "unsafe_member" in output and "contains control or format characters" in output
    assert "<U+001B>[2K<U+000D>valid: all OK <U+202E>txt.md" in output
