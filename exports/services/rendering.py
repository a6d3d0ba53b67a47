"""From database rows to the narrative renderer's inputs, redacted, and to the files a bundle carries.

Redaction happens here, on the renderer's inputs, so the narrative approvers sign is the narrative that ships.
The policy in force is stored on the export (``redaction_policy``) and packaging rebuilds the same redactor
from it, so the bundle's ``events.ndjson`` and attachments match the signed text even if settings change later.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from config.errors import Conflict, ValidationFailed
from exports import narratives as n
from exports.choices import EvidenceKind
from exports.crypto import DecryptionFailed
from exports.formats import (
    BUNDLE_FORMAT_VERSION,
    FAITHFUL_RECORDS_FORMAT,
    GOVERNANCE_EVENT_PREFIXES,
    bundle_file_name,
    narrates_governance_events,
)
from exports.models import Evidence, Execution, ExecutionEvent, NarrativeExport
from exports.redaction import RedactionRuleError, Redactor, Strategy, parse_custom_rules
from exports.storage import ArtifactMissing, storage_open_stream
from governance.models import WorkflowTemplateSnapshot
from textpolicy.utc import utc_iso_compact

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# Uploaded files redacted like the narrative when they are text (docs/redaction.md).
TEXT_CONTENT_TYPES = frozenset(
    {"application/json", "application/x-ndjson", "application/xml", "application/yaml", "application/x-yaml"}
)
TEXT_SUFFIXES = frozenset(
    {".csv", ".tsv", ".txt", ".json", ".ndjson", ".md", ".log", ".yaml", ".yml", ".ini", ".env", ".cfg", ".conf",
     ".xml", ".toml", ".properties"}
)  # fmt: skip


# --- Redaction policy -----------------------------------------------------------------------------------------


def redaction_policy_current(*, enabled: bool = True) -> dict[str, Any]:
    """The configured policy as a self-contained document (custom rules inlined). ``enabled=False`` (the export's
    template has redaction switched off, docs/redaction.md) is recorded as ``{"enabled": false}``."""
    if not enabled:
        return {"enabled": False}
    config = settings.DOSSIER_REDACTION
    rules: dict[str, Any] = {"rules": []}
    if config.get("rules_file"):
        try:
            with open(config["rules_file"], encoding="utf-8") as handle:
                rules = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ValidationFailed(
                f"The redaction rules file cannot be read: {exc}", code="redaction_rules_invalid"
            ) from exc
    policy = {
        "strategy": str(Strategy(config.get("strategy", "label"))),
        "overrides": dict(sorted((config.get("overrides") or {}).items())),
        "rules": rules,
    }
    redactor_for(policy)  # refuse an invalid policy before anything is stored
    return policy


def redactor_for(policy: dict[str, Any]) -> Redactor:
    try:
        return Redactor(
            enabled=policy.get("enabled", True) is not False,
            strategy=Strategy(policy.get("strategy", "label")),
            overrides={key: Strategy(value) for key, value in (policy.get("overrides") or {}).items()},
            custom_rules=parse_custom_rules(policy.get("rules") or {"rules": []}, source="redaction policy"),
        )
    except (RedactionRuleError, ValueError) as exc:
        raise ValidationFailed(f"The redaction policy is invalid: {exc}", code="redaction_rules_invalid") from exc


class _Redaction:
    """A redactor plus the running count of what it replaced.

    Results are memoised per distinct string: timelines repeat the same step names, operators and notes
    thousands of times, and redaction is deterministic, so each distinct string is scanned once (and every
    occurrence still counted).
    """

    MEMO_LIMIT = 200_000

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.counts: Counter[str] = Counter()
        self._memo: dict[str, tuple[str, dict[str, int]]] = {}

    def text(self, value: str) -> str:
        hit = self._memo.get(value)
        if hit is None:
            result = self.redactor.redact(value)
            hit = (result.text, dict(result.counts))
            if len(self._memo) < self.MEMO_LIMIT:
                self._memo[value] = hit
        if hit[1]:
            self.counts.update(hit[1])
        return hit[0]

    def json(self, value: Any) -> Any:
        """Every string value of a JSON document redacted, recursively; keys, numbers and structure kept."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(item) for item in value]
        return value


# --- Rows to renderer inputs ----------------------------------------------------------------------------------


def person_name(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.username


def _timeline_event(row: ExecutionEvent, redaction: _Redaction) -> n.TimelineEvent:
    return n.TimelineEvent(
        sequence=row.sequence,
        event_type=row.event_type,
        actor_name=person_name(row.actor),
        occurred_at=row.occurred_at,
        payload=redaction.json(row.payload),
    )


def event_record_line(event: n.TimelineEvent) -> bytes:
    """One line of ``events.ndjson``; the file's sha256 is the narrative's "Events stream sha256"."""
    record = {
        "actor": event.actor_name,
        "event_type": event.event_type,
        "occurred_at": utc_iso_compact(event.occurred_at),
        "payload": dict(event.payload),
        "sequence": event.sequence,
    }
    return n.canonical_json(record) + b"\n"


def _pretty_json_bytes(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _safe_file_name(name: str, format_version: int) -> str:
    if format_version >= FAITHFUL_RECORDS_FORMAT:
        return bundle_file_name(name)
    cleaned = _UNSAFE_NAME_CHARS.sub("_", name).strip("._") or "file"
    return cleaned[:120]


@dataclass(frozen=True)
class AttachmentPlan:
    """One evidence item as it will be written under ``data/`` in the bundle.

    ``content`` holds the bytes for rendered kinds; files are streamed from storage (``storage_path``).
    """

    kind: str
    evidence_id: int | None
    event_id: int | None
    title: str
    bundle_path: str
    size: int
    sha256: str
    content: bytes | None = None
    storage_path: str = ""


def _is_text_file(row: Evidence) -> bool:
    content_type = (row.content_type or "").split(";")[0].strip().lower()
    suffix = "." + (row.original_filename or "").rpartition(".")[2].lower() if "." in row.original_filename else ""
    return content_type.startswith("text/") or content_type in TEXT_CONTENT_TYPES or suffix in TEXT_SUFFIXES


def _redacted_file(row: Evidence, redaction: _Redaction) -> bytes | None:
    """The redacted bytes of a text upload when redaction changed something, else None (the file ships as it is).

    Only UTF-8 text files up to ``DOSSIER_REDACTION_MAX_FILE_BYTES`` are read; the bytes must still hash to the
    recorded sha256 (``EvidenceChanged`` otherwise). A file missing from storage is left to packaging, which
    names it (``evidence_missing``)."""
    if not redaction.redactor.enabled or not _is_text_file(row) or row.size > settings.DOSSIER_REDACTION_MAX_FILE_BYTES:
        return None
    try:
        with storage_open_stream(row.storage_path) as handle:
            data = b"".join(iter(lambda: handle.read(1 << 20), b""))
    except ArtifactMissing:
        return None
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise EvidenceChanged(f"evidence file {row.pk} no longer hashes to its recorded sha256")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    result = redaction.redactor.redact(text)
    if not result.total:
        return None
    redaction.counts.update(result.counts)
    return result.text.encode()


def _evidence_item(row: Evidence, redaction: _Redaction, format_version: int) -> tuple[n.EvidenceItem, AttachmentPlan]:
    title = redaction.text(row.title)
    base = f"attachments/{row.kind}/{row.pk}"
    if row.kind == EvidenceKind.FILE:
        name = _safe_file_name(row.original_filename or row.title, format_version)
        redacted = _redacted_file(row, redaction)
        if redacted is not None:
            digest = hashlib.sha256(redacted).hexdigest()
            item = n.EvidenceItem(
                kind=n.EvidenceKind.FILE,
                id=row.pk,
                title=title,
                size=len(redacted),
                sha256=digest,
                created_at=row.created_at,
            )
            plan = AttachmentPlan(row.kind, row.pk, None, title, f"{base}-{name}", len(redacted), digest, redacted)
            return item, plan
        item = n.EvidenceItem(
            kind=n.EvidenceKind.FILE,
            id=row.pk,
            title=title,
            size=row.size,
            sha256=row.sha256,
            created_at=row.created_at,
        )
        plan = AttachmentPlan(
            row.kind, row.pk, None, title, f"{base}-{name}", row.size, row.sha256, storage_path=row.storage_path
        )
        return item, plan
    markdown, data, content, extension = _evidence_content(
        kind=row.kind, body=row.body, data=row.data, redaction=redaction, format_version=format_version
    )
    path = f"{base}.{extension}"
    digest = hashlib.sha256(content).hexdigest()
    item = n.EvidenceItem(
        kind=n.EvidenceKind(row.kind),
        id=row.pk,
        title=title,
        size=len(content),
        sha256=digest,
        created_at=row.created_at,
        markdown=markdown,
        data=data,
    )
    return item, AttachmentPlan(row.kind, row.pk, None, title, path, len(content), digest, content=content)


def _evidence_content(
    *, kind: str, body: str, data: Any, redaction: _Redaction | None, format_version: int
) -> tuple[str | None, Any, bytes, str]:
    """A rendered evidence item as the narrative shows it and the bundle carries it: ``(markdown, data, bytes,
    file extension)``, redacted with ``redaction`` (None: as stored)."""
    text = redaction.text if redaction else str
    structured = redaction.json if redaction else (lambda value: value)
    markdown: str | None = None
    shown: Any = None
    if kind == EvidenceKind.NOTEBOOK_ENTRY:
        markdown = text(body)
    elif kind == EvidenceKind.REMEDIATION_REPORT and body:
        markdown = text(body)
        if data is not None:
            # Sorted from format 3 on, so the bytes do not depend on how the database orders JSON keys.
            sort_keys = format_version >= FAITHFUL_RECORDS_FORMAT
            fenced = json.dumps(structured(data), indent=2, sort_keys=sort_keys)
            markdown += "\n\n" + "\n".join(n.fenced_block(fenced, "json"))
    else:
        shown = structured(data)
    if markdown is not None:
        return markdown, shown, _markdown_bytes(markdown, kind, format_version), "md"
    return markdown, shown, _pretty_json_bytes(shown), "json"


def evidence_content(*, kind: str, body: str, data: Any) -> bytes:
    """The bytes a bundle of the current format carries for a notebook entry or structured evidence item when
    nothing in it is redacted: what its evidence descriptor's size and sha256 describe."""
    return _evidence_content(kind=kind, body=body, data=data, redaction=None, format_version=BUNDLE_FORMAT_VERSION)[2]


def _markdown_bytes(markdown: str, kind: str, format_version: int) -> bytes:
    """A notebook entry ships exactly the bytes of its (redacted) body from format 3 on, so that its evidence
    descriptor's size and sha256 are those of the file in the bundle; earlier formats ended every Markdown
    file with a newline."""
    if kind == EvidenceKind.NOTEBOOK_ENTRY and format_version >= FAITHFUL_RECORDS_FORMAT:
        return markdown.encode()
    return (markdown if markdown.endswith("\n") else markdown + "\n").encode()


def _event_item(row: ExecutionEvent, redaction: _Redaction) -> tuple[n.EvidenceItem, AttachmentPlan]:
    event = _timeline_event(row, redaction)
    content = event_record_line(event)
    digest = hashlib.sha256(content).hexdigest()
    title = f"#{row.sequence} {row.event_type}"
    item = n.EvidenceItem(
        kind=n.EvidenceKind.TIMELINE_EVENT,
        id=row.pk,
        title=title,
        size=len(content),
        sha256=digest,
        created_at=row.recorded_at,
        event=event,
    )
    path = f"attachments/{EvidenceKind.TIMELINE_EVENT}/{row.pk}.json"
    return item, AttachmentPlan(EvidenceKind.TIMELINE_EVENT, None, row.pk, title, path, len(content), digest, content)


_TIMELINE_FIELDS = ("sequence", "event_type", "occurred_at", "payload", "actor_id")


def _narrated_timeline(
    *, execution_id: int, through_sequence: int, redaction: _Redaction, format_version: int
) -> list[n.TimelineEvent]:
    """The timeline as the renderer needs it, read as plain tuples with actor names resolved once per actor:
    the same events ``timeline_rows`` yields, without building a model instance per event."""
    rows = list(
        _narrated_rows(execution_id=execution_id, through_sequence=through_sequence, format_version=format_version)
        .order_by("sequence")
        .values_list(*_TIMELINE_FIELDS)
        .iterator(chunk_size=5000)
    )
    actors = {row[4] for row in rows if row[4] is not None}
    names = {user.pk: person_name(user) for user in get_user_model().objects.filter(pk__in=actors)} if actors else {}
    return [
        n.TimelineEvent(
            sequence=sequence,
            event_type=event_type,
            actor_name=names.get(actor_id, ""),
            occurred_at=occurred_at,
            payload=redaction.json(payload),
        )
        for sequence, event_type, occurred_at, payload, actor_id in rows
    ]


def _narrated_rows(*, execution_id: int, through_sequence: int, format_version: int):
    """The events a narrative of ``format_version`` narrates: from format 3 on, the experiment's own events only.
    Governance and packaging events stay on the execution's timeline (analytics and the feed read them), but a
    preview or an earlier version must not grow the next signed narrative."""
    rows = ExecutionEvent.objects.filter(execution_id=execution_id, sequence__lte=through_sequence)
    if not narrates_governance_events(format_version):
        for prefix in GOVERNANCE_EVENT_PREFIXES:
            rows = rows.exclude(event_type__startswith=prefix)
    return rows


def timeline_rows(*, execution_id: int, through_sequence: int, format_version: int) -> Iterator[ExecutionEvent]:
    return (
        _narrated_rows(execution_id=execution_id, through_sequence=through_sequence, format_version=format_version)
        .select_related("actor")
        .order_by("sequence")
        .iterator(chunk_size=2000)
    )


def timeline_events(*, export: NarrativeExport, redactor: Redactor | None = None) -> Iterator[n.TimelineEvent]:
    """The export's narrated timeline, redacted with the export's own policy, in sequence order (streamed)."""
    redaction = _Redaction(redactor or redactor_for(export.redaction_policy))
    rows = timeline_rows(
        execution_id=export.execution_id,
        through_sequence=export.events_through_sequence,
        format_version=export.bundle_format_version,
    )
    for row in rows:
        yield _timeline_event(row, redaction)


def export_meta(export: NarrativeExport, redaction: _Redaction) -> n.ExportMeta:
    snapshot = export.template_snapshot
    return n.ExportMeta(
        export_id=export.pk,
        version=export.version,
        template_snapshot_id=snapshot.pk if snapshot else None,
        template_snapshot_hash=snapshot.content_sha256 if snapshot else None,
        classification=export.classification,
        notes=redaction.text(export.notes),
        author_name=person_name(export.author),
        created_at=export.created_at,
    )


def execution_info(execution: Execution, redaction: _Redaction) -> n.ExecutionInfo:
    return n.ExecutionInfo(
        id=execution.pk,
        title=redaction.text(execution.title),
        team_slug=execution.team.slug,
        team_name=execution.team.name,
        protocol_template_key=execution.protocol_template_key or None,
        status=execution.status,
        owner_name=person_name(execution.owner),
        created_at=execution.created_at,
        started_at=execution.started_at,
        completed_at=execution.completed_at,
    )


@dataclass(frozen=True)
class RenderedNarrative:
    approval_text: str
    manifest: list[dict[str, Any]]
    digest: str
    redaction_counts: dict[str, int]
    attachments: list[AttachmentPlan]


def _narrative_context(
    *,
    execution: Execution,
    through_sequence: int,
    evidence: Iterable[Evidence],
    events: Iterable[ExecutionEvent],
    meta: Callable[[_Redaction], n.ExportMeta],
    redaction: _Redaction,
    format_version: int,
) -> tuple[n.NarrativeContext, list[AttachmentPlan]]:
    """The renderer's inputs for ``execution``: its timeline up to ``through_sequence`` and the selected evidence
    (``events`` are timeline rows cited as evidence), all redacted with the rules of ``format_version``. Export
    creation and previews share it."""
    try:
        pairs = [_evidence_item(row, redaction, format_version) for row in evidence]
    except EvidenceChanged as exc:
        raise Conflict(str(exc), code="evidence_integrity_failed") from exc
    except DecryptionFailed as exc:
        raise Conflict(f"Stored evidence does not decrypt: {exc.message}", code="decryption_failed") from exc
    pairs += [_event_item(row, redaction) for row in events]
    timeline = _narrated_timeline(
        execution_id=execution.pk, through_sequence=through_sequence, redaction=redaction, format_version=format_version
    )
    context = n.NarrativeContext(
        execution=execution_info(execution, redaction),
        events=timeline,
        evidence=[item for item, _ in pairs],
        export=meta(redaction),
    )
    return context, [plan for _, plan in pairs]


def narrative_render(
    *, export: NarrativeExport, evidence: Iterable[Evidence], events: Iterable[ExecutionEvent]
) -> RenderedNarrative:
    """Render the approval text of an export from its selection (``events`` are timeline rows cited as
    evidence), redacting with the export's stored policy."""
    redaction = _Redaction(redactor_for(export.redaction_policy))
    context, plans = _narrative_context(
        execution=export.execution,
        through_sequence=export.events_through_sequence,
        evidence=evidence,
        events=events,
        meta=lambda r: export_meta(export, r),
        redaction=redaction,
        format_version=export.bundle_format_version,
    )
    text = n.render_for_approval(context)
    manifest = n.evidence_manifest(context.evidence)
    return RenderedNarrative(
        approval_text=text,
        manifest=manifest,
        digest=n.narrative_digest(text, manifest),
        redaction_counts=dict(sorted(redaction.counts.items())),
        attachments=sorted(plans, key=lambda plan: plan.bundle_path),
    )


@dataclass(frozen=True)
class PreviewNarrative:
    markdown: str
    manifest: list[dict[str, Any]]
    redaction_counts: dict[str, int]


def narrative_preview_render(
    *,
    execution: Execution,
    author,
    snapshot: WorkflowTemplateSnapshot | None,
    evidence: Iterable[Evidence],
    events: Iterable[ExecutionEvent],
    classification: str,
    at: datetime,
) -> PreviewNarrative:
    """What the next export of ``execution`` would narrate, rendered as an unsaved preview with the current
    redaction policy: the same inputs export creation builds, without an export row."""
    redaction = _Redaction(redactor_for(redaction_policy_current()))

    def meta(r: _Redaction) -> n.ExportMeta:
        return n.ExportMeta(
            export_id=None,
            version=None,
            template_snapshot_id=snapshot.pk if snapshot else None,
            template_snapshot_hash=snapshot.content_sha256 if snapshot else None,
            classification=classification,
            notes="",
            author_name=person_name(author),
            created_at=at,
        )

    context, _ = _narrative_context(
        execution=execution,
        through_sequence=execution.last_sequence,
        evidence=evidence,
        events=events,
        meta=meta,
        redaction=redaction,
        format_version=BUNDLE_FORMAT_VERSION,
    )
    return PreviewNarrative(
        markdown=n.render_preview_narrative(context),
        manifest=n.evidence_manifest(context.evidence),
        redaction_counts=dict(sorted(redaction.counts.items())),
    )


def stored_narrative_digest(export: NarrativeExport) -> str | None:
    """``narrative_digest`` recomputed from what the export stores: its approval text and evidence manifest.

    Equal to ``export.narrative_digest`` unless the stored narrative or manifest changed after rendering; None when
    the stored content cannot even be hashed (a NUL in the text, a manifest that is not canonical JSON)."""
    try:
        return n.narrative_digest(export.narrative_markdown, export.evidence_manifest)
    except (TypeError, ValueError):
        return None


def attachment_plans(export: NarrativeExport) -> list[AttachmentPlan]:
    """Rebuild the attachments of an export from its stored selection with its stored redaction policy.

    Evidence rows are immutable, so each rebuilt item must carry the digest recorded at creation; a mismatch
    means stored evidence changed and raises ``EvidenceChanged``.
    """
    redaction = _Redaction(redactor_for(export.redaction_policy))
    plans = []
    for attachment in export.attachments.select_related("evidence", "event__actor").order_by("bundle_path"):
        if attachment.event is not None:
            _, plan = _event_item(attachment.event, redaction)
        else:
            _, plan = _evidence_item(attachment.evidence, redaction, export.bundle_format_version)
        if (plan.sha256, plan.size, plan.bundle_path) != (attachment.sha256, attachment.size, attachment.bundle_path):
            raise EvidenceChanged(f"{attachment.bundle_path} no longer matches the digest recorded at creation")
        plans.append(plan)
    return plans


class EvidenceChanged(Exception):
    """Stored evidence no longer matches what the export recorded when it was created."""
