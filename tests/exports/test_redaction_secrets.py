"""Secrets never reach a signed bundle (docs/redaction.md): every planted credential type is redacted in event
payloads, export notes, notebook bodies and CSV evidence, and detect-secrets finds no more in a bundle built with
them than in one built without them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exports.redaction import RedactionRuleError, Redactor, parse_custom_rules
from tests.exports.secrets_corpus import HARMLESS, PLANTED

CUSTOM_FORMAT = {
    "rules": [
        {"name": "custom_pattern", "pattern": "CUSTOM-[0-9]{6}", "type": "custom_id", "description": "Custom ID format"}
    ],
    "strategies": {"label": {"replacement": "[REDACTED:{type}]"}},
    "default_strategy": "label",
}


@pytest.mark.parametrize(("kind", "line", "secret"), PLANTED, ids=[kind for kind, _, _ in PLANTED])
def test_every_planted_secret_is_redacted_once_and_for_good(kind, line, secret):
    redactor = Redactor()
    first = redactor.redact(line)
    assert secret not in first.text and first.total >= 1
    again = redactor.redact(first.text)
    assert again.text == first.text and again.total == 0
    assert secret not in json.dumps(redactor.redact_json({"note": line, "nested": [line]}).data)


@pytest.mark.parametrize(
    "text",
    [
        "template_key: default-ladder",
        "key_id: ed25519-2024",
        "password: changeme",
        "token: 3f2a6c1e9b0d4f7a8c5e2b1d0a9f8e7c6b5a4d3c2b1a0f9e8d7c6b5a4f3e2d1c",  # a sha256 digest
        "the task-abcdefghijklmnopqrstuvwxyz0123 finished",
        "secret: [REDACTED:SECRET]",
    ],
)
def test_identifiers_and_words_that_look_like_assignments_are_kept(text):
    assert Redactor().redact(text).text == text


def test_the_typed_custom_rule_format_is_accepted():
    rules = parse_custom_rules(CUSTOM_FORMAT)
    result = Redactor(custom_rules=rules).redact("batch CUSTOM-123456 released")
    assert result.text == "batch [REDACTED:CUSTOM_ID] released" and result.counts == {"CUSTOM_ID": 1}
    masked = {**CUSTOM_FORMAT, "default_strategy": "mask", "strategies": {}}
    assert Redactor(custom_rules=parse_custom_rules(masked)).redact("CUSTOM-123456").text == "*" * 13


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategies": {"label": {"replacement": "<hidden>"}}}, "replacement must be"),
        ({"strategies": {"shred": {}}}, "unknown strategy"),
        ({"default_strategy": "shred"}, "default_strategy"),
        ({"extra": 1}, "unknown keys"),
        ({"rules": [{"name": "a", "pattern": "(", "type": "x"}]}, "does not compile"),
        ({"rules": [{"name": "a", "pattern": "A", "type": "email"}]}, "already used"),
        (
            {
                "rules": [
                    {"name": "a", "pattern": "A", "type": "t"},
                    {"name": "b", "pattern": "B", "type": "t", "strategy": "mask"},
                ]
            },
            "two strategies",
        ),  # fmt: skip
        ({"rules": [{"name": "a", "pattern": "A"}]}, "missing keys"),
    ],
)
def test_bad_typed_rule_files_name_the_problem(change, message):
    with pytest.raises(RedactionRuleError, match=message):
        parse_custom_rules({**CUSTOM_FORMAT, **change})


# --- Acceptance: bundles built from the corpus -------------------------------------------------------------------


def _export_with(lines: list[str], *, execution, scientist):
    import hashlib

    from django.core.files.uploadedfile import SimpleUploadedFile

    from exports.services.evidence import evidence_file_store, notebook_entry_create
    from exports.services.executions import EventInput, events_append
    from exports.services.narrative_exports import EvidenceRef, export_create

    events = events_append(
        execution=execution,
        actor=scientist,
        events=[EventInput("config.loaded", {"line": line, "env": {"value": line}}) for line in lines],
    )
    note = notebook_entry_create(execution=execution, actor=scientist, title="Setup", body="\n\n".join(lines))
    csv = ("setting,value\n" + "".join(f"{index},{json.dumps(line)}\n" for index, line in enumerate(lines))).encode()
    upload = SimpleUploadedFile("settings.csv", csv, content_type="text/csv")
    sheet = evidence_file_store(
        execution=execution, actor=scientist, upload=upload, sha256=hashlib.sha256(csv).hexdigest()
    )
    refs = [EvidenceRef(kind="notebook_entry", id=note.pk), EvidenceRef(kind="file", id=sheet.pk)] + [
        EvidenceRef(kind="timeline_event", id=event.pk) for event in events
    ]
    return export_create(execution=execution, actor=scientist, evidence=refs, notes="\n".join(lines))


def _unpacked(export, tmp_path: Path, name: str) -> Path:
    from exports.models import ExportArtifact
    from tests.exports.bagtools import unpack
    from tests.stored import plaintext_path

    artifact = ExportArtifact.objects.get(export=export)
    return unpack(plaintext_path(artifact.storage_path, tmp_path / f"{name}-archive"), tmp_path / name)


def _detect_secrets_count(directory: Path) -> int:
    executable = Path(sys.executable).with_name("detect-secrets")
    result = subprocess.run(
        [str(executable), "scan", "--all-files", "."], cwd=directory, capture_output=True, text=True, check=True
    )
    return sum(len(found) for found in json.loads(result.stdout)["results"].values())


@pytest.mark.django_db
def test_a_bundle_built_from_planted_secrets_holds_none_of_them(
    execution, scientist, published_template, allow_packaging, tmp_path, django_capture_on_commit_callbacks
):
    from exports.services.packaging import packaging_enqueue

    with django_capture_on_commit_callbacks(execute=True):
        planted_export = _export_with([line for _, line, _ in PLANTED], execution=execution, scientist=scientist)
        harmless_export = _export_with(list(HARMLESS.values()), execution=execution, scientist=scientist)
        packaging_enqueue(export=planted_export)
        packaging_enqueue(export=harmless_export)
    planted, harmless = _unpacked(planted_export, tmp_path, "planted"), _unpacked(harmless_export, tmp_path, "harmless")
    everything = b"".join(path.read_bytes() for path in planted.rglob("*") if path.is_file())
    assert b"[REDACTED:" in everything
    (sheet,) = (planted / "data" / "attachments" / "file").iterdir()
    assert sheet.read_text().count("[REDACTED:") == len(PLANTED)
    leaked = [kind for kind, _, secret in PLANTED if secret.encode() in everything]
    assert leaked == []
    assert _detect_secrets_count(planted) <= _detect_secrets_count(harmless)
