"""A team with a realistic record for team data export and erasure tests: executions with events and evidence (an
uploaded file, a notebook entry), one export signed by its whole ladder and packaged into storage, one awaiting
approval."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from approvals.models import ApprovalStage
from approvals.services.ladders import stage_decide
from exports.models import NarrativeExport
from exports.services.evidence import evidence_file_store, notebook_entry_create
from exports.services.executions import EventInput, events_append, execution_create
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.services.packaging import export_package
from tests.approvals.factories import PASSWORD, Crew

FILE_CONTENT = b"well,od600\nA1,0.41\nA2,0.44\n" * 64


@dataclass
class TeamRecord:
    packaged: NarrativeExport
    waiting: NarrativeExport


def sign_all(export: NarrativeExport, crew: Crew) -> None:
    for role in ("reviewer", "qa_approver", "compliance"):
        stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
        stage_decide(
            export_id=export.pk, actor=crew.signer_for(role), username=crew.signer_for(role).username,
            decision="approve", password=PASSWORD,
            comment=f"checked by {role}", expected_stage_id=stage.pk,
        )  # fmt: skip


def team_record_create(team, crew: Crew, *, executions: int = 2) -> TeamRecord:
    exports: list[NarrativeExport] = []
    for number in range(executions):
        execution = execution_create(team=team, title=f"Assay run {number}", owner=crew.author)
        events = events_append(
            execution=execution,
            actor=crew.author,
            events=[EventInput("step.started", {"step": "thaw"}), EventInput("measurement.recorded", {"od600": 0.4})],
        )
        note = notebook_entry_create(execution=execution, actor=crew.author, title="Bench notes", body="No deviations.")
        upload = SimpleUploadedFile(f"plate {number}.csv", FILE_CONTENT, content_type="text/csv")
        blob = evidence_file_store(
            execution=execution, actor=crew.author, upload=upload, sha256=hashlib.sha256(FILE_CONTENT).hexdigest()
        )
        refs = [
            EvidenceRef(kind="notebook_entry", id=note.pk),
            EvidenceRef(kind="file", id=blob.pk),
            EvidenceRef(kind="timeline_event", id=events[1].pk),
        ]
        exports.append(export_create(execution=execution, actor=crew.author, evidence=refs))
    sign_all(exports[0], crew)
    export_package(export_id=exports[0].pk)  # what the queued task does once the transaction commits
    exports[0].refresh_from_db()
    assert exports[0].status == "packaged", exports[0].status
    return TeamRecord(packaged=exports[0], waiting=exports[-1])


def run(*command, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], cwd=cwd, check=True, capture_output=True, timeout=300)


def validate_like_an_auditor(archive: Path, public_key_pem: str, workdir: Path) -> Path:
    """bagit-python full validation, ``sha512sum -c`` on both manifests and openssl's signature check, on the
    extracted bag; returns the bag directory."""
    (workdir / "pub.pem").write_text(public_key_pem)
    extracted = workdir / "extracted"
    extracted.mkdir()
    flag = "--zstd" if archive.name.endswith(".zst") else "--gzip"
    run(shutil.which("tar") or "tar", flag, "-xf", archive, "-C", extracted)
    (bag,) = list(extracted.iterdir())
    run(sys.executable, "-m", "bagit", "--validate", bag)
    run("sha512sum", "--strict", "-c", "manifest-sha512.txt", cwd=bag)
    run("sha512sum", "--strict", "-c", "tagmanifest-sha512.txt", cwd=bag)
    run(
        "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", workdir / "pub.pem", "-rawin",
        "-in", bag / "tagmanifest-sha512.txt", "-sigfile", bag / "signatures" / "tagmanifest-sha512.txt.sig",
    )  # fmt: skip
    return bag
