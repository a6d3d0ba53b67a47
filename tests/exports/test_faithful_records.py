"""Bundle format 3: file names keep their Unicode, evidence descriptors describe the bytes that ship, and the
narrative's timeline holds the experiment's own events. Exports rendered before keep format 2's rules and
their bundles keep replaying byte-identical."""

import hashlib
import subprocess
import sys
import unicodedata

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from exports import formats
from exports.bundle import extract_bundle
from exports.formats import FILE_NAME_MAX_BYTES, bundle_file_name
from exports.models import Evidence, ExportArtifact, ExportAttachment, NarrativeExport
from exports.services.evidence import evidence_file_store, notebook_entry_create
from exports.services.executions import EventInput, timeline_append
from exports.services.lifecycle import export_lifecycle_record
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.services.packaging import PackagingOutcome, export_package, export_replay, packaging_enqueue
from tests.stored import plaintext_path

pytestmark = pytest.mark.django_db

CYRILLIC = "ПЦР-данные.csv"
ACCENTED = "HPLC résumé (final) v2.csv"
NOTE_BODY = "Plate read at 21 °C; no deviations."  # no trailing newline, nothing to redact


# --- File names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [CYRILLIC, ACCENTED, "plate 1.csv", "données.tar.gz", "(a) [b] {c} & d's.txt"])
def test_names_that_bagit_and_tar_accept_are_kept_as_written(name):
    assert bundle_file_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a/b\\c.csv", "a_b_c.csv"),
        ("100%.csv", "100_.csv"),
        ("tab\there.csv", "tab_here.csv"),
        ("nul\x00.csv", "nul_.csv"),
        ("line\nbreak\r.csv", "line_break_.csv"),
        ("bidi\u202etxt.exe", "bidi_txt.exe"),
        ("zero\u200bwidth.csv", "zero_width.csv"),
        ("  padded.csv  ", "padded.csv"),
        ("", "file"),
        ("\x00", "_"),
    ],
)
def test_only_what_a_bag_or_an_archive_cannot_hold_is_replaced(name, expected):
    assert bundle_file_name(name) == expected


def test_names_are_nfc():
    decomposed = unicodedata.normalize("NFD", ACCENTED)
    assert decomposed != ACCENTED
    assert bundle_file_name(decomposed) == ACCENTED


def test_long_names_are_cut_in_bytes_on_a_character_boundary_keeping_the_extension():
    name = "д" * 300 + ".csv"
    cut = bundle_file_name(name)
    assert len(cut.encode()) <= FILE_NAME_MAX_BYTES
    assert cut.endswith(".csv") and set(cut.removesuffix(".csv")) == {"д"}
    no_extension = bundle_file_name("é" * 300)
    assert len(no_extension.encode()) <= FILE_NAME_MAX_BYTES and set(no_extension) == {"é"}


# --- Bundles --------------------------------------------------------------------------------------------------


def _upload(execution, actor, name: str, content: bytes) -> Evidence:
    upload = SimpleUploadedFile(name, content, content_type="text/csv")
    return evidence_file_store(
        execution=execution, actor=actor, upload=upload, sha256=hashlib.sha256(content).hexdigest()
    )


@pytest.fixture
def faithful_selection(execution, scientist):
    cyrillic = _upload(execution, scientist, CYRILLIC, b"well,ct\nA1,21.4\n")
    accented = _upload(execution, scientist, ACCENTED, b"peak,area\n1,0.93\n")
    note = notebook_entry_create(execution=execution, actor=scientist, title="Bench", body=NOTE_BODY)
    refs = [EvidenceRef("file", cyrillic.pk), EvidenceRef("file", accented.pk), EvidenceRef("notebook_entry", note.pk)]
    return {"cyrillic": cyrillic, "accented": accented, "note": note, "refs": refs}


def _package(export: NarrativeExport) -> ExportArtifact:
    packaging_enqueue(export=export)
    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED
    return ExportArtifact.objects.get(export=export)


def _extract(artifact: ExportArtifact, tmp_path):
    return extract_bundle(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path / "bag")


def test_a_bundle_keeps_unicode_file_names_and_bagit_validates_it(
    execution, scientist, faithful_selection, published_template, allow_packaging, tmp_path
):
    export = export_create(execution=execution, actor=scientist, evidence=faithful_selection["refs"])
    assert export.bundle_format_version == formats.BUNDLE_FORMAT_VERSION == 4
    artifact = _package(export)
    assert artifact.format_version == 4
    bag = _extract(artifact, tmp_path)

    files = bag / "data" / "attachments" / "file"
    assert sorted(path.name for path in files.iterdir()) == sorted(
        [f"{faithful_selection['cyrillic'].pk}-{CYRILLIC}", f"{faithful_selection['accented'].pk}-{ACCENTED}"]
    )
    assert "Bundle-Format-Version: 4\n" in (bag / "bag-info.txt").read_text()
    manifest = (bag / "manifest-sha512.txt").read_text(encoding="utf-8")
    assert "  data/dossier.pdf\n" in manifest  # bagit --validate below checks the rendition's digest too
    assert f"data/attachments/file/{faithful_selection['cyrillic'].pk}-{CYRILLIC}\n" in manifest

    validation = subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(bag)], capture_output=True, text=True, timeout=120
    )
    assert validation.returncode == 0, validation.stderr
    check = subprocess.run(
        ["sha512sum", "--strict", "-c", "manifest-sha512.txt"], cwd=bag, capture_output=True, timeout=120
    )
    assert check.returncode == 0, check.stdout
    from tests.exports.test_commands import run

    code, out, _ = run("verify_export", str(export.pk))
    assert code == 0, out


def test_evidence_descriptors_give_the_size_and_sha256_of_the_bytes_in_the_bundle(
    execution, scientist, faithful_selection, published_template, allow_packaging, tmp_path
):
    export = export_create(execution=execution, actor=scientist, evidence=faithful_selection["refs"])
    bag = _extract(_package(export), tmp_path)
    note = faithful_selection["note"]
    shipped = (bag / "data" / "attachments" / "notebook_entry" / f"{note.pk}.md").read_bytes()

    assert shipped == NOTE_BODY.encode()
    assert (note.size, note.sha256) == (len(shipped), hashlib.sha256(shipped).hexdigest())
    (listed,) = [item for item in export.evidence_manifest if item["kind"] == "notebook_entry"]
    assert (listed["size"], listed["sha256"]) == (note.size, note.sha256)
    attachment = ExportAttachment.objects.get(export=export, evidence=note)
    assert (attachment.size, attachment.sha256) == (note.size, note.sha256)
    for row in (faithful_selection["cyrillic"], faithful_selection["accented"]):
        path = bag / "data" / "attachments" / "file" / f"{row.pk}-{row.original_filename}"
        assert (row.size, row.sha256) == (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())


def test_an_export_rendered_under_format_2_keeps_its_names_and_bytes_and_replays_identically(
    execution, scientist, faithful_selection, published_template, allow_packaging, tmp_path, monkeypatch
):
    """An export created by the previous release: format 2's names, a newline after the notebook entry, and
    governance events in its timeline; packaged after the upgrade it still builds and replays as format 2."""
    monkeypatch.setattr("exports.services.narrative_exports.BUNDLE_FORMAT_VERSION", 2)
    timeline_append(execution=execution, actor=scientist, events=[EventInput("governance.preview.summary", {})])
    export = export_create(execution=execution, actor=scientist, evidence=faithful_selection["refs"])
    assert export.bundle_format_version == 2
    artifact = _package(export)
    assert artifact.format_version == 2
    bag = _extract(artifact, tmp_path)

    names = sorted(path.name for path in (bag / "data" / "attachments" / "file").iterdir())
    assert names == sorted(
        [f"{faithful_selection['cyrillic'].pk}--_.csv", f"{faithful_selection['accented'].pk}-HPLC_r_sum_final_v2.csv"]
    )
    note = faithful_selection["note"]
    assert (
        bag / "data" / "attachments" / "notebook_entry" / f"{note.pk}.md"
    ).read_bytes() == NOTE_BODY.encode() + b"\n"
    assert "Bundle-Format-Version: 2\n" in (bag / "bag-info.txt").read_text()
    events = (bag / "data" / "events.ndjson").read_text()
    assert '"event_type":"governance.preview.summary"' in events
    assert "governance.preview.summary" in export.narrative_markdown

    assert export_replay(export=NarrativeExport.objects.get(pk=export.pk)).identical


def test_a_format_3_bundle_replays_identically(
    execution, scientist, faithful_selection, published_template, allow_packaging
):
    export = export_create(execution=execution, actor=scientist, evidence=faithful_selection["refs"])
    artifact = _package(export)
    result = export_replay(export=NarrativeExport.objects.get(pk=export.pk))
    assert result.identical and result.stored_sha256 == artifact.sha256


# --- The narrative's timeline ---------------------------------------------------------------------------------


def _timeline_section(markdown: str) -> str:
    return markdown.split("## Timeline", 1)[1].split("## Evidence", 1)[0]


def test_governance_and_packaging_events_stay_on_the_timeline_but_out_of_the_narrative(
    execution, scientist, make_export, allow_packaging, tmp_path
):
    first = make_export()
    timeline_append(execution=execution, actor=scientist, events=[EventInput("governance.preview.summary", {})])
    export_lifecycle_record(export=first, event_type="narrative_export.approval.rejected", actor=scientist)
    second = make_export()

    assert execution.events.filter(event_type__startswith="governance.").exists()
    assert _timeline_section(second.narrative_markdown) == _timeline_section(first.narrative_markdown)
    assert "governance." not in second.narrative_markdown
    assert "narrative_export." not in _timeline_section(second.narrative_markdown)

    bag = _extract(_package(second), tmp_path)
    events = (bag / "data" / "events.ndjson").read_bytes()
    assert b"governance." not in events and b"narrative_export." not in events
    digest = hashlib.sha256(events).hexdigest()
    assert f"- **Events stream sha256:** `{digest}`" in second.narrative_markdown


def test_structured_evidence_descriptors_describe_the_bundle_files(
    execution, scientist, published_template, allow_packaging, tmp_path
):
    from exports.services.evidence import structured_evidence_create

    rows = [
        structured_evidence_create(
            execution=execution, actor=scientist, kind="qc_metric", title="QC", data={"z_prime": 0.71, "pass": True}
        ),
        structured_evidence_create(
            execution=execution,
            actor=scientist,
            kind="remediation_report",
            title="CAPA",
            body="Recalibrated the reader.",
            data={"zeta": [1, 2], "alpha": {"b": 1, "a": "é"}},
        ),
        structured_evidence_create(
            execution=execution, actor=scientist, kind="remediation_report", title="Note", body="Nothing else."
        ),
    ]
    export = export_create(
        execution=execution, actor=scientist, evidence=[EvidenceRef(row.kind, row.pk) for row in rows]
    )
    bag = _extract(_package(export), tmp_path)
    for row in rows:
        (path,) = (bag / "data" / "attachments" / row.kind).glob(f"{row.pk}.*")
        shipped = path.read_bytes()
        assert (row.size, row.sha256) == (len(shipped), hashlib.sha256(shipped).hexdigest()), path.name
        (listed,) = [item for item in export.evidence_manifest if item["id"] == row.pk]
        assert (listed["size"], listed["sha256"]) == (row.size, row.sha256)
