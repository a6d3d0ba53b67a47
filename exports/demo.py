"""Demo executions with realistic timelines and evidence for the team `biolabs`."""

import hashlib
import io
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from exports.models import Execution, NarrativeExport
from exports.services.evidence import evidence_file_store, notebook_entry_create, structured_evidence_create
from exports.services.executions import EventInput, events_append, execution_create
from exports.services.narrative_exports import EvidenceRef, export_create
from governance.demo import demo_team, demo_user

EXECUTIONS = [
    ("Cell viability assay — batch 42", "cell-viability"),
    ("Stability study — lot 7 (40 °C / 75 % RH)", "stability-study"),
    ("Plasmid prep QC — run 118", "plasmid-qc"),
    ("Buffer exchange validation — run 9", "buffer-exchange"),
    ("ELISA titration — plate 3", "elisa-titration"),
]

STEPS = ["thaw", "seed_plate", "incubate", "add_reagent", "read_plate", "analyse"]


def _timeline(start, index: int) -> list[EventInput]:
    events = [EventInput("session.started", {"operator": "demo-scientist", "bench": f"B-{index + 2}"}, start)]
    at = start
    for step_number, step in enumerate(STEPS, start=1):
        at += timedelta(minutes=17 + 3 * step_number)
        events.append(EventInput("step.started", {"step": step, "index": step_number}, at))
        at += timedelta(minutes=11)
        events.append(
            EventInput(
                "measurement.recorded",
                {"step": step, "instrument": "PR-2200", "od600": round(0.41 + 0.07 * step_number, 3), "temp_c": 37.0},
                at,
            )
        )
        events.append(EventInput("step.completed", {"step": step, "index": step_number, "ok": True}, at))
    return events


def _plate_csv(index: int) -> bytes:
    out = io.StringIO()
    out.write("well,od600,viability_pct\n")
    for row in "ABCDEFGH":
        for column in range(1, 13):
            value = 0.35 + ((ord(row) * 7 + column * 13 + index) % 50) / 100
            out.write(f"{row}{column},{value:.3f},{min(100.0, value * 110):.1f}\n")
    return out.getvalue().encode()


def seed(stdout) -> None:
    team = demo_team()
    scientist = demo_user("demo-scientist")
    created = 0
    for index, (title, protocol) in enumerate(EXECUTIONS):
        if Execution.objects.filter(team=team, title=title).exists():
            continue
        execution = execution_create(team=team, title=title, owner=scientist, protocol_template_key=protocol)
        start = timezone.now() - timedelta(days=6 - index, hours=3)
        events_append(execution=execution, actor=scientist, events=_timeline(start, index))
        notebook_entry_create(
            execution=execution,
            actor=scientist,
            title="Bench notes",
            body=f"## Observations\n\nCells reached confluence on day {index + 2}. "
            "Reagent lot **RX-2291** used throughout.\n\n- Plate reader calibrated at 09:00\n- No deviations\n",
        )
        structured_evidence_create(
            execution=execution,
            actor=scientist,
            kind="qc_metric",
            title="Plate QC",
            data={"z_prime": 0.71 - index * 0.02, "cv_pct": 4.2 + index, "pass": True},
        )
        structured_evidence_create(
            execution=execution,
            actor=scientist,
            kind="analytics_snapshot",
            title="Dose-response fit",
            data={"model": "4PL", "ec50_um": 1.8 + index / 10, "hill": 1.1, "r2": 0.987},
        )
        content = _plate_csv(index)
        upload = SimpleUploadedFile(f"plate-{index + 1}.csv", content, content_type="text/csv")
        evidence_file_store(
            execution=execution,
            actor=scientist,
            upload=upload,
            sha256=hashlib.sha256(content).hexdigest(),
            title="Plate reader export",
        )
        created += 1
    stdout.write(f"executions: {created} created, {len(EXECUTIONS) - created} already present")

    _seed_exports(stdout, team, scientist)


# Executions (by index in EXECUTIONS) that get a first export version awaiting approval. Ladder states beyond
# that (approved, packaged, rejected, overdue) are seeded by the approvals app, which owns the ladder.
EXPORTED = (0, 1, 2)


def _seed_exports(stdout, team, scientist) -> None:
    created = 0
    for index in EXPORTED:
        execution = Execution.objects.filter(team=team, title=EXECUTIONS[index][0]).first()
        if execution is None or NarrativeExport.objects.filter(execution=execution).exists():
            continue
        refs = [EvidenceRef(kind=row.kind, id=row.pk) for row in execution.evidence.order_by("id")]
        export_create(execution=execution, actor=scientist, evidence=refs, notes="Demo export for review.")
        created += 1
    stdout.write(f"narrative exports: {created} created")
