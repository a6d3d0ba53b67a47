"""The rendition ``data/dossier.pdf``: a PDF/A-3b copy of the narrative for people (docs/exports.md, "The
rendition").

What it shows: the title block, the execution summary, the approval record with one signature manifestation per
signature (printed name, role, meaning, decision, time in UTC and in the team's time zone, the digest signed),
the evidence list with the path, size and sha256 of each file in the bag, the digests, and the timeline; every
page is headed with the export id, version and "page N of M". It embeds ``manifest-sha512.txt`` (relationship
Data) as the bag's manifest reads without the PDF's own line: the PDF cannot contain its own digest, so it
carries the digests of every other payload file, and the bag's manifest and the attestation carry the PDF's.

How it is made (Typst, ``exports/pdf/``):
- All text goes to the templates as JSON data, shown inert (docs/text-policy.md); nothing from the data is ever
  parsed as markup, so a title like ``#set text(red)`` prints literally.
- The timeline is pre-wrapped here into lines of a monospaced font, a fixed number per page: the page count is
  known before compiling, so a long timeline is compiled in parts of ``PAGES_PER_PART`` pages, each in a fresh
  process (``exports/pdf/engine.py``; ``DOSSIER_PDF_PROCESSES`` at once), and the parts are joined with pikepdf.
  Memory stays flat whatever the number of events; a part whose page count differs from the plan fails the
  rendering rather than mis-number pages.
- Deterministic: fonts are the exact files of ``DOSSIER_PDF_FONT_FILES``, the document date is the export's
  creation, the document id is derived from the content, and the same export gives the same bytes.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pikepdf
from django.conf import settings

from exports import narratives as n
from exports.bundle import EMBEDDED_MANIFEST_NAME
from exports.hooks import ApprovalRecord
from exports.models import NarrativeExport
from exports.services.rendering import AttachmentPlan, person_name, redactor_for
from textpolicy import inert, inert_json, inert_line
from textpolicy.utc import utc_iso_compact

ENGINE = Path(__file__).resolve().parent.parent / "pdf" / "engine.py"
# A4 at 7 pt DejaVu Sans Mono holds 121 characters a line and 89 lines a page; both are kept below that so that
# no line wraps and no page overflows, whatever the characters.
LINE_WIDTH = 116
LINES_PER_PAGE = 80
PAGES_PER_PART = 100
_INDENT = " " * 10
COLUMNS = f"{'Seq':>8}  {'Occurred (UTC)':<27} Event type, actor; payload below"


class RenditionFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- Timeline -------------------------------------------------------------------------------------------------


def _wrapped(text: str, width: int) -> list[str]:
    if len(text) <= width:
        return [text]
    return [text[start : start + width] for start in range(0, len(text), width)]


@lru_cache(maxsize=4096)
def _inert_label(text: str) -> str:
    """Event types and actor names repeat across a timeline: each distinct one is made inert once."""
    return inert_line(text)


def timeline_event_lines(event: n.TimelineEvent) -> list[str]:
    """One event as timeline lines: sequence, time, type and actor, then the canonical JSON payload, each
    shown inert on one line and cut into lines of at most ``LINE_WIDTH`` characters."""
    head = (
        f"{int(event.sequence):>8}  {utc_iso_compact(event.occurred_at):<27} "
        f"{_inert_label(event.event_type)}, {_inert_label(event.actor_name) or 'system'}"
    )
    lines = _wrapped(head, LINE_WIDTH)
    if event.payload:
        shown = inert_line(inert_json(n.canonical_json(dict(event.payload)).decode()))
        lines += [_INDENT + chunk for chunk in _wrapped(shown, LINE_WIDTH - len(_INDENT))]
    return lines


@dataclass
class TimelinePages:
    """Timeline lines collected event by event into pages; an event is not split across pages unless it is
    longer than a page."""

    pages: list[list[str]] = field(default_factory=list)
    events: int = 0

    def add(self, event: n.TimelineEvent) -> None:
        lines = timeline_event_lines(event)
        self.events += 1
        room = LINES_PER_PAGE - 1  # the column line heads every page
        if not self.pages or (len(self.pages[-1]) + len(lines) > room and len(lines) <= room):
            self.pages.append([])
        for line in lines:
            if len(self.pages[-1]) >= room:
                self.pages.append([])
            self.pages[-1].append(line)


# --- The document's data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenditionInputs:
    """Everything the rendition shows except the embedded manifest, which comes last (``rendition_render``)."""

    front: dict[str, Any]
    timeline: TimelinePages


def _in_zone(moment: datetime, zone_name: str) -> str:
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone, zone_name = ZoneInfo("UTC"), "UTC"
    local = moment.astimezone(zone)
    return (
        f"{local.strftime('%Y-%m-%d %H:%M:%S')} {zone_name} (UTC{local.strftime('%z')[:3]}:{local.strftime('%z')[3:]})"
    )


def _signature(signature: n.Signature, zone_name: str) -> dict[str, Any]:
    status = "superseded (invalidated by a stage reset)" if signature.superseded else "current"
    stage = inert_line(signature.stage_name) or "(unnamed stage)"
    return {
        "heading": f"Stage {int(signature.stage_index)}: {stage}, iteration {int(signature.iteration)}",
        "fields": [
            ["Printed name", inert_line(signature.signer_name)],
            ["Role", inert_line(signature.required_role)],
            ["Meaning", inert_line(signature.meaning)],
            ["Decision", str(n.Decision(signature.decision))],
            ["Signed (UTC)", utc_iso_compact(signature.signed_at)],
            ["Signed (team time)", _in_zone(signature.signed_at, zone_name)],
            ["Digest signed", signature.digest, "mono"],
            ["Comment", inert(signature.comment) or "none"],
            ["Status", status],
        ],
    }


def _evidence(plan: AttachmentPlan) -> dict[str, Any]:
    ident = plan.evidence_id if plan.evidence_id is not None else plan.event_id
    return {
        "title": inert_line(plan.title) or "(untitled)",
        "fields": [
            ["Kind", str(plan.kind)],
            ["Evidence id", str(ident)],
            ["File in the bag", f"data/{inert_line(plan.bundle_path)}", "mono"],
            ["Size (bytes)", str(int(plan.size))],
            ["sha256", plan.sha256, "mono"],
        ],
    }


def _optional_time(value: datetime | None) -> str:
    return utc_iso_compact(value) if value is not None else "not recorded"


def _title_block(export: NarrativeExport, format_version: int) -> list[list[str]]:
    snapshot = export.template_snapshot_id
    return [
        ["Export", str(export.pk)],
        ["Version", str(export.version)],
        ["Execution", str(export.execution_id)],
        ["Classification", inert_line(export.classification)],
        ["Author", inert_line(person_name(export.author))],
        ["Created (UTC)", utc_iso_compact(export.created_at)],
        ["Template snapshot", str(snapshot) if snapshot else "none"],
        ["Bundle format", str(format_version)],
    ]


def _summary(export: NarrativeExport, title: str, events: int, evidence: int) -> list[list[str]]:
    execution = export.execution
    team = execution.team
    return [
        ["Title", title],
        ["Team", f"{inert_line(team.name)} ({inert_line(team.slug)}), time zone {inert_line(team.time_zone)}"],
        ["Protocol template", inert_line(execution.protocol_template_key or "") or "none"],
        ["Status", inert_line(execution.status)],
        ["Owner", inert_line(person_name(execution.owner))],
        ["Created (UTC)", utc_iso_compact(execution.created_at)],
        ["Started (UTC)", _optional_time(execution.started_at)],
        ["Completed (UTC)", _optional_time(execution.completed_at)],
        ["Events", str(events)],
        ["Evidence items", str(evidence)],
    ]


def _digests(export: NarrativeExport, events_sha256: str, events: int) -> list[list[str]]:
    snapshot = export.template_snapshot
    return [
        ["Narrative digest (signed)", export.narrative_digest, "mono"],
        ["Template snapshot sha256", snapshot.content_sha256 if snapshot else "none", "mono"],
        ["events.ndjson sha256", events_sha256, "mono"],
        ["Events", str(events)],
    ]


CLOSING = (
    "This document is data/dossier.pdf of the bundle named in the header. It is listed with its sha512 in the "
    "bag's manifest-sha512.txt and with its sha256 in the signed attestation (signatures/attestation.dsse.json).",
    f"It embeds {EMBEDDED_MANIFEST_NAME}: the bag's manifest without this document's own line, the sha512 of every "
    "other file under data/. Every signature above binds the narrative digest, computed from data/narrative.md "
    "and the evidence manifest (docs/exports.md, how to verify paper against bytes).",
)


def _timeline_intro(events: int) -> str:
    if not events:
        return "No events recorded."
    return (
        f"{events} events, in sequence order, from the next page on; data/events.ndjson holds the same events as "
        "canonical JSON lines."
    )


def rendition_inputs(
    *,
    export: NarrativeExport,
    record: ApprovalRecord,
    plans: Sequence[AttachmentPlan],
    timeline: TimelinePages,
    events_sha256: str,
    format_version: int,
) -> RenditionInputs:
    """The rendition's data for a packaged export (``timeline`` filled from the same pass that writes
    ``events.ndjson``)."""
    redactor = redactor_for(export.redaction_policy)
    title = inert_line(redactor.redact(export.execution.title).text) or "(untitled)"
    notes = inert(redactor.redact(export.notes).text) if export.notes else ""
    zone = export.execution.team.time_zone
    signatures = sorted(record.signatures, key=n.signature_sort_key)
    header = f"Dossier export {export.pk}, version {export.version} (execution {export.execution_id})"
    front = {
        "document": {
            "title": f"Narrative dossier: {title}",
            "author": inert_line(person_name(export.author)) or "Dossier",
            "date": list(export.created_at.astimezone(ZoneInfo("UTC")).timetuple()[:6]),
            "header": header,
        },
        "heading": f"Narrative dossier: {title}",
        "title_block": _title_block(export, format_version),
        "notes": notes.split("\n") if notes else None,
        "summary": _summary(export, title, timeline.events, len(plans)),
        "signatures": [_signature(signature, zone) for signature in signatures],
        "evidence": [_evidence(plan) for plan in plans],
        "digests": _digests(export, events_sha256, timeline.events),
        "closing": list(CLOSING),
        "columns": COLUMNS,
        "timeline_intro": _timeline_intro(timeline.events),
        "manifest_name": EMBEDDED_MANIFEST_NAME,
        "manifest_description": "The bag's manifest-sha512.txt without this document's own line",
    }
    return RenditionInputs(front=front, timeline=timeline)


# --- Rendering ------------------------------------------------------------------------------------------------


_FONT_DIRECTORIES: dict[tuple[str, ...], str] = {}


def _font_directory() -> str:
    """A private directory of links to exactly the files of ``DOSSIER_PDF_FONT_FILES``, made once per process:
    Typst reads fonts from directories, and this one holds nothing else."""
    fonts = tuple(settings.DOSSIER_PDF_FONT_FILES)
    missing = [font for font in fonts if not os.path.isfile(font)]
    if missing:
        raise RenditionFailed("rendition_failed", f"font files missing: {', '.join(missing)}")
    directory = _FONT_DIRECTORIES.get(fonts)
    if directory is None or not os.path.isdir(directory):
        directory = tempfile.mkdtemp(prefix="dossier-fonts-")
        atexit.register(shutil.rmtree, directory, True)
        for index, font in enumerate(fonts):
            os.symlink(os.path.abspath(font), os.path.join(directory, f"{index:02d}-{os.path.basename(font)}"))
        _FONT_DIRECTORIES[fonts] = directory
    return directory


def _compile(template: str, data: dict[str, Any], font_directory: str) -> bytes:
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script, no shell; data only on stdin
            [sys.executable, str(ENGINE), template, font_directory],
            input=json.dumps(data, ensure_ascii=False).encode(),
            capture_output=True,
            timeout=settings.DOSSIER_PDF_PART_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RenditionFailed("rendition_timeout", f"compiling {template} took longer than {exc.timeout} s") from exc
    if done.returncode != 0:
        message = inert_line(done.stderr.decode("utf-8", errors="replace").strip()[-2000:])
        raise RenditionFailed("rendition_failed", f"compiling {template} failed: {message}")
    return done.stdout


def rendition_parts(inputs: RenditionInputs, manifest: bytes) -> list[tuple[str, dict[str, Any], int | None]]:
    """The compile requests, in order: ``(template, data, expected page count)``; the first part's count is
    only known once compiled (None)."""
    pages = inputs.timeline.pages
    first, rest = pages[:PAGES_PER_PART], pages[PAGES_PER_PART:]
    front = {**inputs.front, "timeline": first, "timeline_pages": len(rest), "manifest": manifest.decode()}
    parts: list[tuple[str, dict[str, Any], int | None]] = [("dossier.typ", front, None)]
    for start in range(0, len(rest), PAGES_PER_PART):
        chunk = rest[start : start + PAGES_PER_PART]
        data = {"document": inputs.front["document"], "columns": COLUMNS, "pages": chunk, "start": start}
        parts.append(("timeline.typ", data, len(chunk)))
    return parts


def rendition_render(inputs: RenditionInputs, manifest: bytes) -> bytes:
    """Compile the parts and join them into one PDF/A-3b document; ``manifest`` is embedded. The first part
    (front matter and the first timeline pages) comes first, as its page count numbers the others; the other
    parts compile ``DOSSIER_PDF_PROCESSES`` at a time."""
    parts = rendition_parts(inputs, manifest)
    fonts = _font_directory()
    template, data, _ = parts[0]
    first = _compile(template, data, fonts)
    if len(parts) == 1:
        return first
    with ExitStack() as stack:
        document = stack.enter_context(pikepdf.open(io.BytesIO(first)))
        first_pages = len(document.pages)
        total = first_pages + sum(expected or 0 for _, _, expected in parts[1:])
        requests = [
            (template, {**data, "offset": first_pages + data["start"], "total": total}, expected)
            for template, data, expected in parts[1:]
        ]
        with ThreadPoolExecutor(max_workers=max(1, settings.DOSSIER_PDF_PROCESSES)) as pool:
            compiled = pool.map(lambda request: _compile(request[0], request[1], fonts), requests)
            for (_, _, expected), content in zip(requests, compiled, strict=True):
                part = stack.enter_context(pikepdf.open(io.BytesIO(content)))
                if len(part.pages) != expected:
                    raise RenditionFailed(
                        "rendition_layout_mismatch", f"a timeline part has {len(part.pages)} pages, {expected} planned"
                    )
                document.pages.extend(part.pages)
        # The appended pages' structure references point into their own documents' structure trees.
        for page in document.pages[first_pages:]:
            if "/StructParents" in page.obj:
                del page.obj["/StructParents"]
        out = io.BytesIO()
        document.save(out, deterministic_id=True)
        return out.getvalue()
