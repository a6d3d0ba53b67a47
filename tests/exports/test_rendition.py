"""The rendition data/dossier.pdf of a packaged export (docs/exports.md, "The rendition"): PDF/A-3b, fonts
embedded, an OutputIntent, the bag's manifest embedded, every signature manifested, deterministic, named by the
attestation, and checked by verify_export."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
from datetime import timedelta

import bagit
import pikepdf
import pytest
from django.core.management import call_command

from exports import narratives as n
from exports.bundle import (
    RENDITION_PATH,
    embedded_manifest,
    manifest_without_rendition,
    rendition_problems,
    verify_bundle,
)
from exports.hooks import ApprovalRecord
from exports.models import ExportArtifact, NarrativeExport
from exports.selectors.narrative_exports import signing_keys_list
from exports.services import pdf as rendition
from exports.services.executions import EventInput, events_append
from exports.services.packaging import export_package, export_replay, packaging_enqueue
from tests.exports.bagtools import repack, unpack
from tests.stored import plaintext_path

pytestmark = pytest.mark.django_db

PROVIDER = "tests.exports.test_rendition.two_signatures"
HOSTILE_TITLE = '#set text(fill: red) = Heading *bold* $x^2$ #"\\u{1b}" ]) #pagebreak()'


def two_signatures(export):
    first = n.Signature(
        stage_index=1,
        stage_name="Научный обзор",
        required_role="reviewer",
        signer_name="Анна Петрова",
        signed_at=export.created_at + timedelta(hours=1),
        meaning="Reviewed: Ελέγχθηκε",
        comment="ok \x1b[31m",
        digest=export.narrative_digest,
        decision=n.Decision.APPROVE,
    )
    second = n.Signature(
        stage_index=2,
        stage_name="QA",
        required_role="qa_approver",
        signer_name="Γιώργος Παπαδόπουλος",
        signed_at=export.created_at + timedelta(hours=2),
        meaning="Approved for release",
        comment="",
        digest=export.narrative_digest,
        decision=n.Decision.APPROVE,
    )
    return ApprovalRecord(signatures=(first, second), document={"export_id": export.pk})


def package(make_export, settings, **kwargs) -> NarrativeExport:
    settings.DOSSIER_APPROVAL_RECORD_PROVIDER = PROVIDER
    export = make_export(**kwargs)
    packaging_enqueue(export=export)
    assert export_package(export_id=export.pk) == "packaged"
    return NarrativeExport.objects.get(pk=export.pk)


@pytest.fixture
def packaged(make_export, allow_packaging, settings, execution):
    execution.title = HOSTILE_TITLE
    execution.save(update_fields=["title"])
    team = execution.team
    team.time_zone = "Europe/Athens"
    team.save(update_fields=["time_zone"])
    return package(make_export, settings)


@pytest.fixture
def bag(packaged, tmp_path):
    artifact = ExportArtifact.objects.get(export=packaged)
    return unpack(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path / "bag")


def pdf_text(path, *pages: int) -> str:
    args = ["-f", str(pages[0]), "-l", str(pages[-1])] if pages else []
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, check=True, text=True).stdout


def test_the_bag_validates_with_the_rendition_listed_in_its_manifests(bag):
    bagit.Bag(str(bag)).validate()  # full validation: every digest and the Payload-Oxum
    manifest = (bag / "manifest-sha512.txt").read_text()
    pdf = (bag / "data" / "dossier.pdf").read_bytes()
    assert f"{hashlib.sha512(pdf).hexdigest()}  data/dossier.pdf\n" in manifest
    assert pdf.startswith(b"%PDF-")


def test_the_rendition_is_pdfa_3b_with_fonts_output_intent_and_the_embedded_manifest(bag):
    pdf = (bag / "data" / "dossier.pdf").read_bytes()
    bag_manifest = (bag / "manifest-sha512.txt").read_bytes()
    with pikepdf.open(io.BytesIO(pdf)) as document:
        metadata = document.open_metadata()
        assert (metadata.get("pdfaid:part"), metadata.get("pdfaid:conformance")) == ("3", "B")
        intents = document.Root.OutputIntents
        assert intents[0].S == "/GTS_PDFA1" and "/DestOutputProfile" in intents[0]
        fonts = {str(font.BaseFont): font for page in document.pages for font in page.Resources.Font.values()}
        assert fonts and all(
            any(key in font.DescendantFonts[0].FontDescriptor for key in ("/FontFile2", "/FontFile3"))
            for font in fonts.values()
        )
        assert {name.split("+")[-1] for name in fonts} <= {
            "DejaVuSans",
            "DejaVuSans-Bold",
            "DejaVuSansMono",
            "DejaVuSansMono-Bold",
        }
        spec = document.Root.AF[0]
        assert spec.AFRelationship == "/Data" and str(spec.UF) == "manifest-sha512.txt"
        embedded = embedded_manifest(document)
    # The bag's manifest without the PDF's own line: every other payload file with its sha512.
    assert embedded == manifest_without_rendition(bag_manifest)
    assert embedded.count(b"\n") == bag_manifest.count(b"\n") - 1 and b"data/narrative.md" in embedded
    for line in embedded.decode().splitlines():
        digest, path = line.split("  ", 1)
        assert hashlib.sha512((bag / path).read_bytes()).hexdigest() == digest
    assert rendition_problems(pdf, bag_manifest=bag_manifest) == []


def test_every_signature_is_manifested_with_name_role_meaning_times_and_digest(bag, packaged):
    text = pdf_text(bag / "data" / "dossier.pdf")
    for name, role, meaning in (
        ("Анна Петрова", "reviewer", "Reviewed: Ελέγχθηκε"),
        ("Γιώργος Παπαδόπουλος", "qa_approver", "Approved for release"),
    ):
        assert name in text and role in text and meaning in text
    signed = packaged.created_at + timedelta(hours=1)
    assert n.utc_iso_compact(signed) in text  # UTC
    athens = signed.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Athens"))
    assert f"{athens:%Y-%m-%d %H:%M:%S} Europe/Athens" in text  # the team's time zone
    assert text.count(packaged.narrative_digest) >= 3  # two signatures and the digests section
    assert "ok <U+001B>[31m" in text and "\x1b" not in text  # control characters shown inert
    assert "Научный обзор" in text


def test_a_hostile_title_with_typst_markup_renders_literally(bag):
    text = pdf_text(bag / "data" / "dossier.pdf", 1)
    assert "#set text(fill: red) = Heading *bold* $x^2$" in text
    assert '#"\\u{1b}" ]) #pagebreak()' in text


def test_every_page_is_headed_with_export_version_and_page_n_of_m(bag, packaged):
    path = bag / "data" / "dossier.pdf"
    with pikepdf.open(path) as document:
        total = len(document.pages)
    for page in range(1, total + 1):
        text = pdf_text(path, page)
        assert f"Dossier export {packaged.pk}, version {packaged.version}" in text
        assert f"page {page} of {total}" in text


def test_a_rebuild_gives_the_same_pdf_bytes_and_the_attestation_names_them(bag, packaged, tmp_path):
    pdf = (bag / "data" / "dossier.pdf").read_bytes()
    envelope = json.loads((bag / "signatures" / "attestation.dsse.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    subjects = {subject["name"]: subject["digest"] for subject in statement["subject"]}
    assert subjects[RENDITION_PATH] == {
        "sha256": hashlib.sha256(pdf).hexdigest(),
        "sha512": hashlib.sha512(pdf).hexdigest(),
    }
    assert export_replay(export=packaged).identical  # the whole archive, hence the PDF, rebuilds byte-identical


def test_the_timeline_spans_parts_compiled_apart_and_joined(
    make_export, allow_packaging, settings, execution, scientist, tmp_path, monkeypatch
):
    monkeypatch.setattr(rendition, "PAGES_PER_PART", 2)
    events_append(
        execution=execution,
        actor=scientist,
        events=[EventInput("measurement.recorded", {"well": f"A{i}", "od600": i / 100}) for i in range(400)],
    )
    export = package(make_export, settings)
    artifact = ExportArtifact.objects.get(export=export)
    bag = unpack(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path / "bag")
    path = bag / "data" / "dossier.pdf"
    with pikepdf.open(path) as document:
        total = len(document.pages)
        assert total >= 6  # the first part plus several timeline parts
        assert embedded_manifest(document) == manifest_without_rendition((bag / "manifest-sha512.txt").read_bytes())
    text = pdf_text(path)
    assert all(f"page {page} of {total}" in text for page in range(1, total + 1))
    assert '{"od600":3.99,"well":"A399"}' in text.replace(" ", "")
    assert rendition_problems(path.read_bytes(), bag_manifest=(bag / "manifest-sha512.txt").read_bytes()) == []
    assert export_replay(export=export).identical


def test_verify_export_accepts_the_bundle_and_names_each_rendition_problem(bag, packaged, tmp_path, capsys):
    call_command("verify_export", str(packaged.pk))
    assert "valid:" in capsys.readouterr().out

    pdf_path = bag / "data" / "dossier.pdf"
    with pikepdf.open(pdf_path, allow_overwriting_input=True) as document:
        del document.Root["/OutputIntents"]
        font = next(iter(document.pages[0].Resources.Font.values()))
        del font.DescendantFonts[0].FontDescriptor["/FontFile2"]
        with document.open_metadata(set_pikepdf_as_editor=False) as metadata:
            metadata["pdfaid:part"] = "1"
        document.save(pdf_path)
    keys = {key.key_id: key.public_key_pem for key in signing_keys_list()}
    report = verify_bundle(repack(bag, tmp_path / "tampered.tar.gz"), keys)
    codes = {problem.code for problem in report.problems}
    assert {
        "rendition_not_pdfa",
        "rendition_output_intent_missing",
        "rendition_font_not_embedded",
        "digest_mismatch",
    } <= codes

    pdf_path.unlink()
    report = verify_bundle(repack(bag, tmp_path / "missing.tar.gz"), keys)
    assert "rendition_missing" in {problem.code for problem in report.problems}


def test_an_embedded_manifest_that_differs_from_the_bag_is_reported(bag):
    pdf = (bag / "data" / "dossier.pdf").read_bytes()
    other = b"0" * 128 + b"  data/narrative.md\n"
    assert [code for code, _ in rendition_problems(pdf, bag_manifest=other)] == ["rendition_manifest_mismatch"]
    assert [code for code, _ in rendition_problems(b"%PDF-1.7 garbage", bag_manifest=other)] == ["rendition_unreadable"]


def rendition_url(export):
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/artifact/rendition"


def test_the_pdf_alone_downloads_from_the_artifact_for_team_members_only(
    packaged, bag, client_for, scientist, other_team, member
):
    response = client_for(scientist).get(rendition_url(packaged))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content == (bag / "data" / "dossier.pdf").read_bytes()
    assert response["ETag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert f"dossier-{packaged.pk}-v1.pdf" in response["Content-Disposition"]
    downloads = packaged.execution.events.filter(event_type="narrative_export.artifact.downloaded")
    assert downloads.filter(payload__via="rendition").count() == 1

    outsider = member("scientist", username="outsider", in_team=other_team)
    response = client_for(outsider).get(rendition_url(packaged))
    assert response.status_code == 404 and response.json()["error"]["code"] == "export_not_found"


def test_an_artifact_without_a_rendition_is_a_404_with_its_own_code(packaged, client_for, scientist):
    from exports.services.packaging import bundle_build
    from tests.stored import replace_plaintext

    artifact = ExportArtifact.objects.select_related("signing_key").get(export=packaged)
    old = io.BytesIO()
    built = bundle_build(
        export=packaged, out=old, signing_key=artifact.signing_key, compression=artifact.compression, format_version=3
    )
    replace_plaintext(artifact.storage_path, old.getvalue())
    ExportArtifact.objects.filter(pk=artifact.pk).update(sha256=built.sha256, size=built.size, format_version=3)
    response = client_for(scientist).get(rendition_url(packaged))
    assert response.status_code == 404 and response.json()["error"]["code"] == "rendition_not_found"


def test_the_pdf_is_refused_above_the_readers_clearance(packaged, client_for, member):
    reader = member("scientist", username="reader")  # no clearance row: Internal
    packaged.classification = "Confidential"
    packaged.save(update_fields=["classification"])
    response = client_for(reader).get(rendition_url(packaged))
    assert response.status_code == 403 and response.json()["error"]["code"] == "clearance_insufficient"


def test_timeline_lines_fit_the_width_show_controls_inert_and_pages_never_overflow():
    from datetime import UTC, datetime

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    long_event = n.TimelineEvent(7, "step.recorded", "Ωμέγα \u202eactor", at, {"note": "x" * 900 + "\x1b[2J"})
    lines = rendition.timeline_event_lines(long_event)
    assert all(len(line) <= rendition.LINE_WIDTH for line in lines) and len(lines) == 10
    assert "Ωμέγα <U+202E>actor" in lines[0] and "<U+001B>[2J" in "".join(lines) and "\x1b" not in "".join(lines)

    pages = rendition.TimelinePages()
    short = n.TimelineEvent(1, "step.recorded", "", at, {"ok": True})
    for index in range(60):
        pages.add(long_event if index % 7 == 0 else short)
    room = rendition.LINES_PER_PAGE - 1
    assert pages.events == 60 and all(len(page) <= room for page in pages.pages)
    # An event starts a new page rather than being split across two.
    assert all(not page[0].startswith(" " * 10) for page in pages.pages)
    assert sum(len(page) for page in pages.pages) == 9 * 10 + 51 * 2


def test_missing_font_files_fail_the_run_with_a_stable_code_and_publish_nothing(
    make_export, allow_packaging, settings, tmp_path
):
    from exports.models import PackagingRun

    settings.DOSSIER_PDF_FONT_FILES = [str(tmp_path / "NoSuchFont.ttf")]
    export = make_export()
    packaging_enqueue(export=export)
    assert export_package(export_id=export.pk) == "failed"
    run = PackagingRun.objects.filter(export=export).latest("pk")
    assert run.error_code == "rendition_failed" and "NoSuchFont.ttf" in run.error_message
    assert not ExportArtifact.objects.filter(export=export).exists()
