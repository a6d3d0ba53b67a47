from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

ALLOW_GATE = "tests.exports.gates.allow"


@pytest.fixture
def published_template(db):
    from tests.exports.factories import published_template_create

    return published_template_create()


@pytest.fixture
def allow_packaging(settings):
    settings.DOSSIER_PACKAGING_GATES = [ALLOW_GATE]


@pytest.fixture
def evidence_set(execution, scientist):
    """A notebook entry, a QC metric, an uploaded CSV and a few timeline events of ``execution``."""
    from exports.services.evidence import evidence_file_store, notebook_entry_create, structured_evidence_create
    from exports.services.executions import EventInput, events_append

    events = events_append(
        execution=execution,
        actor=scientist,
        events=[
            EventInput("step.started", {"step": "thaw", "operator_email": "sam@example.org"}),
            EventInput("measurement.recorded", {"od600": 0.42, "note": "call 555-123-4567 if drift"}),
            EventInput("step.completed", {"step": "thaw", "ok": True}),
        ],
    )
    note = notebook_entry_create(
        execution=execution, actor=scientist, title="Bench notes", body="Contact qa@example.org.\n\n- no deviations\n"
    )
    qc = structured_evidence_create(
        execution=execution, actor=scientist, kind="qc_metric", title="Plate QC", data={"z_prime": 0.71, "pass": True}
    )
    content = b"well,od600\nA1,0.41\nA2,0.44\n"
    upload = SimpleUploadedFile("plate 1.csv", content, content_type="text/csv")
    blob = evidence_file_store(
        execution=execution, actor=scientist, upload=upload, sha256=hashlib.sha256(content).hexdigest()
    )
    return {"note": note, "qc": qc, "file": blob, "events": events}


@pytest.fixture
def selection(evidence_set):
    return [
        {"kind": "notebook_entry", "id": evidence_set["note"].pk},
        {"kind": "qc_metric", "id": evidence_set["qc"].pk},
        {"kind": "file", "id": evidence_set["file"].pk},
        {"kind": "timeline_event", "id": evidence_set["events"][1].pk},
    ]


@pytest.fixture
def make_export(execution, scientist, selection, published_template):
    from exports.services.narrative_exports import EvidenceRef, export_create

    def make(**kwargs):
        refs = [EvidenceRef(**item) for item in kwargs.pop("selection", selection)]
        return export_create(execution=execution, actor=scientist, evidence=refs, **kwargs)

    return make
