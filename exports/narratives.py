"""Markdown dossier for one execution's narrative export (docs/exports.md, "The narrative").

Pure Python on purpose: the renderer takes plain frozen dataclasses, not ORM rows, so what a signature binds can
be recomputed by an auditor from the stored inputs without a running Dossier. Nothing here imports Django.

Output contract
---------------
* Deterministic: the same inputs give the same text whatever the order of the evidence list, dict key order or
  locale. Lines end with ``\\n`` and the text ends with exactly one ``\\n``.
* The text is CommonMark plus GFM tables. It is meant to be rendered with ``linkify`` off (markdown-it's
  ``commonmark`` preset with ``table`` enabled): with linkify on, bare domains in evidence would become links.
* Every user-supplied string (titles, names, event types, payloads, comments, notes, classification) goes through
  :func:`escape_inline` or is embedded in a fenced code block whose fence is longer than any backtick run it
  contains, so no input can add a heading, link, image, HTML, table cell or row, or forge the approval record
  or the digests block.
* User text is inert (docs/text-policy.md): control and format characters (bidi overrides and isolates,
  zero-width characters, ESC and the other C0/C1 controls) appear as visible ``<U+XXXX>`` escapes, inline and
  inside fenced blocks (JSON payloads and notebook bodies) alike.

Layout of the text rendered for approval (every heading is emitted by the renderer itself)::

    # Narrative dossier: <title>          (``# Narrative preview: <title>`` for a preview)
    ## Execution summary
    ## Timeline                            one table row per event, ordered by sequence
    ## Evidence: <kind>                    one section per kind in EVIDENCE_KIND_ORDER, even when empty
    ### <evidence title>                   one per selected item of that kind
    ## Digests

The packaged ``narrative.md`` is that text, a blank line, then ``## Approval record``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import textpolicy
from textpolicy.utc import utc_iso_compact

JsonValue = Any

APPROVAL_RECORD_HEADING = "## Approval record"
DIGESTS_HEADING = "## Digests"
NARRATIVE_DIGEST_DOMAIN = b"dossier-narrative-digest:v1\n"
CLASSIFICATIONS = ("Public", "Internal", "Confidential", "Restricted")

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class EvidenceKind(StrEnum):
    FILE = "file"
    NOTEBOOK_ENTRY = "notebook_entry"
    ANALYTICS_SNAPSHOT = "analytics_snapshot"
    QC_METRIC = "qc_metric"
    REMEDIATION_REPORT = "remediation_report"
    TIMELINE_EVENT = "timeline_event"


# Section order of the dossier and primary sort key of the manifest; changing it changes every digest.
EVIDENCE_KIND_ORDER: tuple[EvidenceKind, ...] = tuple(EvidenceKind)
_KIND_RANK = {kind: rank for rank, kind in enumerate(EVIDENCE_KIND_ORDER)}
_KIND_HEADINGS = {
    EvidenceKind.FILE: "Files",
    EvidenceKind.NOTEBOOK_ENTRY: "Notebook entries",
    EvidenceKind.ANALYTICS_SNAPSHOT: "Analytics snapshots",
    EvidenceKind.QC_METRIC: "QC metrics",
    EvidenceKind.REMEDIATION_REPORT: "Remediation reports",
    EvidenceKind.TIMELINE_EVENT: "Timeline events",
}


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class NarrativeIntegrityError(ValueError):
    """A signature does not bind the narrative being packaged."""


# --------------------------------------------------------------------------------------------------------------
# Inputs


def _require_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


def _require_sha256(value: str, what: str) -> None:
    if not isinstance(value, str) or _SHA256_HEX.fullmatch(value) is None:
        raise ValueError(f"{what} must be 64 lowercase hex characters, got {value!r}")


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    id: int
    title: str
    team_slug: str
    team_name: str
    protocol_template_key: str | None
    status: str
    owner_name: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self.created_at, "execution created_at")
        _require_aware(self.started_at, "execution started_at")
        _require_aware(self.completed_at, "execution completed_at")


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    sequence: int
    event_type: str
    actor_name: str
    occurred_at: datetime
    payload: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware(self.occurred_at, f"event {self.sequence} occurred_at")


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One selected evidence item.

    The body depends on the kind: ``markdown`` for notebook entries, ``data`` (JSON) for analytics snapshots and
    QC metrics, exactly one of the two for remediation reports, ``event`` for timeline events, none for files
    (the blob itself is bound through ``sha256``).
    """

    kind: EvidenceKind
    id: int | str
    title: str
    size: int
    sha256: str
    created_at: datetime
    markdown: str | None = None
    data: JsonValue = None
    event: TimelineEvent | None = None

    def __post_init__(self) -> None:
        label = f"evidence {self.kind}:{self.id}"
        kind = EvidenceKind(self.kind)
        _require_sha256(self.sha256, f"{label} sha256")
        _require_aware(self.created_at, f"{label} created_at")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"{label} size must be a non-negative integer")
        has_markdown, has_data, has_event = self.markdown is not None, self.data is not None, self.event is not None
        expected = {
            EvidenceKind.FILE: (False, False, False),
            EvidenceKind.NOTEBOOK_ENTRY: (True, False, False),
            EvidenceKind.ANALYTICS_SNAPSHOT: (False, True, False),
            EvidenceKind.QC_METRIC: (False, True, False),
            EvidenceKind.TIMELINE_EVENT: (False, False, True),
        }
        if kind is EvidenceKind.REMEDIATION_REPORT:
            if has_markdown == has_data or has_event:
                raise ValueError(f"{label} needs exactly one of markdown or data")
        elif (has_markdown, has_data, has_event) != expected[kind]:
            raise ValueError(f"{label} has a body that does not fit its kind")


@dataclass(frozen=True, slots=True)
class ExportMeta:
    """Export metadata. ``export_id``, ``version`` and the template snapshot may be None only for a preview."""

    export_id: int | None
    version: int | None
    template_snapshot_id: int | None
    template_snapshot_hash: str | None
    classification: str
    notes: str
    author_name: str
    created_at: datetime

    def __post_init__(self) -> None:
        _require_aware(self.created_at, "export created_at")
        if self.classification not in CLASSIFICATIONS:
            raise ValueError(f"classification must be one of {', '.join(CLASSIFICATIONS)}")
        if self.template_snapshot_hash is not None:
            _require_sha256(self.template_snapshot_hash, "template snapshot hash")


@dataclass(frozen=True, slots=True)
class Signature:
    stage_index: int
    stage_name: str
    required_role: str
    signer_name: str
    signed_at: datetime
    meaning: str
    comment: str
    digest: str
    decision: Decision
    superseded: bool = False
    iteration: int = 1

    def __post_init__(self) -> None:
        _require_aware(self.signed_at, f"signature of stage {self.stage_index} signed_at")
        _require_sha256(self.digest, f"signature of stage {self.stage_index} digest")
        Decision(self.decision)


@dataclass(frozen=True, slots=True)
class NarrativeContext:
    execution: ExecutionInfo
    events: Sequence[TimelineEvent]
    evidence: Sequence[EvidenceItem]
    export: ExportMeta


# --------------------------------------------------------------------------------------------------------------
# Canonical forms and digests


# One shared encoder: json.dumps() with non-default options builds a new encoder on every call, which dominates
# the cost of a 100k-row timeline.
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_canonical_json_str = _CANONICAL_ENCODER.encode


def canonical_json(obj: JsonValue) -> bytes:
    """Sorted keys, no whitespace, UTF-8 with non-ASCII kept, NaN/Infinity refused."""
    return _canonical_json_str(obj).encode()


def _evidence_sort_key(item: EvidenceItem) -> tuple[int, int, int, str]:
    # Integer ids sort numerically and before string ids, so 9 < 10 and mixed id types never compare.
    if isinstance(item.id, int):
        return (_KIND_RANK[EvidenceKind(item.kind)], 0, item.id, "")
    return (_KIND_RANK[EvidenceKind(item.kind)], 1, 0, item.id)


def _sorted_evidence(evidence: Iterable[EvidenceItem]) -> list[EvidenceItem]:
    ordered = sorted(evidence, key=_evidence_sort_key)
    for previous, current in zip(ordered, ordered[1:], strict=False):
        if _evidence_sort_key(previous) == _evidence_sort_key(current):
            raise ValueError(f"evidence {current.kind}:{current.id} is selected twice")
    return ordered


def evidence_manifest(evidence: Iterable[EvidenceItem]) -> list[dict[str, JsonValue]]:
    """Descriptors ``{"kind","id","title","size","sha256"}`` sorted by kind order, then id."""
    return [
        {"kind": str(item.kind), "id": item.id, "title": item.title, "size": item.size, "sha256": item.sha256}
        for item in _sorted_evidence(evidence)
    ]


def manifest_digest(manifest: Sequence[Mapping[str, JsonValue]]) -> str:
    """sha256 hex of ``canonical_json(manifest)``."""
    return hashlib.sha256(canonical_json(list(manifest))).hexdigest()


def _as_dict(payload: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    # The json encoder only accepts real dicts; copying every payload would cost a 100k-row timeline dearly.
    return payload if isinstance(payload, dict) else dict(payload)


def _sorted_events(events: Iterable[TimelineEvent]) -> list[TimelineEvent]:
    ordered = sorted(events, key=lambda event: event.sequence)
    for previous, current in zip(ordered, ordered[1:], strict=False):
        if previous.sequence == current.sequence:
            raise ValueError(f"event sequence {current.sequence} appears twice")
    return ordered


def _event_stream_line(event: TimelineEvent, occurred_at: str, payload_json: str) -> str:
    # Keys written in sorted order by hand so the payload JSON computed for the table is reused; this equals
    # canonical_json of the record (a test holds it to that).
    return (
        f'{{"actor":{_canonical_json_str(event.actor_name)},"event_type":{_canonical_json_str(event.event_type)},'
        f'"occurred_at":"{occurred_at}","payload":{payload_json},"sequence":{int(event.sequence)}}}\n'
    )


def events_stream_digest(events: Iterable[TimelineEvent]) -> str:
    """sha256 hex over the canonical events stream.

    The stream is, for each event in sequence order, ``canonical_json({"actor": actor_name, "event_type": ...,
    "occurred_at": utc_iso_compact(occurred_at), "payload": payload, "sequence": sequence})`` followed by ``b"\\n"``.
    """
    stream = "".join(
        _event_stream_line(event, utc_iso_compact(event.occurred_at), _canonical_json_str(_as_dict(event.payload)))
        for event in _sorted_events(events)
    )
    return hashlib.sha256(stream.encode()).hexdigest()


def narrative_digest(approval_text: str, manifest: Sequence[Mapping[str, JsonValue]]) -> str:
    """The digest every signature binds (docs/exports.md, "The narrative"; docs/approvals.md, "Signing").

    Byte construction, so an auditor can recompute it from ``narrative.md`` and the bundle's manifest::

        sha256(
            b"dossier-narrative-digest:v1\\n"        # domain tag, versioned
            + approval_text.encode("utf-8")          # the narrative as rendered for approval, ending in "\\n"
            + b"\\x00"                                # separator; the rendered text never contains NUL
            + canonical_json(manifest)               # evidence_manifest(): sorted keys, no spaces, UTF-8
        ).hexdigest()

    ``approval_text`` is everything in ``narrative.md`` before the blank line that precedes the last
    ``## Approval record`` heading (see :func:`split_packaged`).
    """
    if "\x00" in approval_text:
        raise ValueError("approval text must not contain NUL")
    payload = NARRATIVE_DIGEST_DOMAIN + approval_text.encode() + b"\x00" + canonical_json(list(manifest))
    return hashlib.sha256(payload).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Escaping


# Backslash-escaping this set is enough for text that never starts a line: it blocks emphasis, code spans,
# links/images ([ ] !), autolinks and HTML (< >), entities (&), strikethrough (~), table cells (|) and heading
# closing sequences (#). Line-start markers (-, +, =, digits) cannot trigger because every line starts with
# renderer-owned text. Newline and tab become their visible Unicode "control picture" so an input can never
# break a line, U+2028/U+2029 become U+2424 so str.splitlines() agrees with Markdown's line count, and every
# other control or format character becomes a visible ``<U+XXXX>`` escape (docs/text-policy.md). Such an escape
# is plain text in CommonMark: no scheme and colon, so no autolink; "+" after the name, so no HTML tag.
_INLINE_SPECIALS = "\\`*_[]<>!|&~#"
_LINE_PICTURES = {"\n": "\u240a", "\t": "\u2409", "\u2028": "\u2424", "\u2029": "\u2424"}
_INLINE_TABLE = textpolicy.translation({char: "\\" + char for char in _INLINE_SPECIALS} | _LINE_PICTURES)
_NEEDS_INLINE_ESCAPE = textpolicy.unsafe_pattern(_INLINE_SPECIALS + "".join(_LINE_PICTURES))
_NEEDS_INLINE_ESCAPE_ASCII = textpolicy.unsafe_pattern(_INLINE_SPECIALS + "\n\t", ascii_only=True)

# Bundle format 1 (bundles packaged before the text policy) showed every C0 control as its control picture and
# left format characters as they were. Its approval records are still rendered this way when such a bundle is
# replayed, so it keeps its bytes; nothing new is rendered with it.
_INLINE_TABLE_V1 = str.maketrans(
    {char: "\\" + char for char in _INLINE_SPECIALS}
    | {chr(code): chr(0x2400 + code) for code in range(0x20)}
    | {"\x7f": "\u2421", "\x85": "\u2424", "\u2028": "\u2424", "\u2029": "\u2424"}
)
_NEEDS_INLINE_ESCAPE_V1 = re.compile(r"[\\`*_\[\]<>!|&~#\x00-\x1f\x7f\x85\u2028\u2029]")
_BACKTICK_RUN = re.compile(r"`+")


def escape_inline(text: str) -> str:
    """Escape text for use inside a Markdown line (table cell, list item, heading), control and format
    characters shown inert."""
    # Most strings need nothing; the regex scan is much cheaper than translate's per-character dict lookups, and
    # for ASCII text (nearly all of it) a short character class does.
    needs = _NEEDS_INLINE_ESCAPE_ASCII if text.isascii() else _NEEDS_INLINE_ESCAPE
    if needs.search(text) is None:
        return text
    return text.translate(_INLINE_TABLE)


def escape_inline_v1(text: str) -> str:
    """:func:`escape_inline` as bundle format 1 had it (approval records of bundles packaged before the policy)."""
    if _NEEDS_INLINE_ESCAPE_V1.search(text) is None:
        return text
    return text.translate(_INLINE_TABLE_V1)


def fenced_block(body: str, info: str) -> list[str]:
    """Lines of a fenced code block holding ``body`` verbatim (line endings normalized to ``\\n``, NUL to U+FFFD).

    The fence is one backtick longer than the longest backtick run in the body, so no body line can close it.
    Narrative sections show user text through :func:`inert_block` instead, which escapes control and format
    characters first; this verbatim form is what evidence files carry.
    """
    normalized = _normalize_newlines(body).replace("\x00", "\ufffd")
    longest = max((len(run) for run in _BACKTICK_RUN.findall(normalized)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *normalized.removesuffix("\n").split("\n"), fence]


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def inert_block(body: str, info: str) -> list[str]:
    """A fenced block of user text for the narrative: line endings normalized, then every control and format
    character but newline and tab shown as ``<U+XXXX>`` (docs/text-policy.md)."""
    return fenced_block(textpolicy.inert(_normalize_newlines(body)), info)


def inert_json_block(data: JsonValue) -> list[str]:
    """A fenced JSON block: pretty JSON whose unsafe characters, raw or escaped by the encoder, are shown as
    ``<U+XXXX>``."""
    return fenced_block(textpolicy.inert_json(_pretty_json(data)), "json")


def _pretty_json(data: JsonValue) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------------------------------------------------
# Rendering


def _field(label: str, value: str) -> str:
    """A ``- **Label:** value`` line; ``label`` is renderer-owned, ``value`` must already be safe."""
    return f"- **{label}:** {value}"


def _optional_time(value: datetime | None) -> str:
    return utc_iso_compact(value) if value is not None else "not recorded"


def _title_block(ctx: NarrativeContext, *, preview: bool) -> list[str]:
    meta = ctx.export
    title = escape_inline(ctx.execution.title) or "(untitled)"
    lines = [f"# Narrative preview: {title}" if preview else f"# Narrative dossier: {title}", ""]
    if preview:
        lines += ["> **Preview.** Not an export version: not signed, not for release.", ""]
    else:
        if meta.export_id is None or meta.version is None:
            raise ValueError("an export id and version are required outside a preview")
        if meta.template_snapshot_id is None or meta.template_snapshot_hash is None:
            raise ValueError("a template snapshot is required outside a preview")
        lines += [_field("Export", str(int(meta.export_id))), _field("Version", str(int(meta.version)))]
    snapshot = "none" if meta.template_snapshot_id is None else str(int(meta.template_snapshot_id))
    lines += [
        _field("Execution", escape_inline(str(ctx.execution.id))),
        _field("Classification", escape_inline(meta.classification)),
        _field("Author", escape_inline(meta.author_name)),
        _field("Created (UTC)", utc_iso_compact(meta.created_at)),
        _field("Template snapshot", snapshot),
    ]
    if meta.notes:
        lines += [_field("Notes", "see below"), "", *inert_block(meta.notes, "text")]
    else:
        lines.append(_field("Notes", "none"))
    return lines


def _execution_summary(ctx: NarrativeContext, event_count: int) -> list[str]:
    execution = ctx.execution
    team = f"{escape_inline(execution.team_name)} ({escape_inline(execution.team_slug)})"
    protocol = escape_inline(execution.protocol_template_key) if execution.protocol_template_key else "none"
    return [
        "## Execution summary",
        "",
        _field("Execution", escape_inline(str(execution.id))),
        _field("Title", escape_inline(execution.title)),
        _field("Team", team),
        _field("Protocol template", protocol),
        _field("Status", escape_inline(execution.status)),
        _field("Owner", escape_inline(execution.owner_name)),
        _field("Created (UTC)", utc_iso_compact(execution.created_at)),
        _field("Started (UTC)", _optional_time(execution.started_at)),
        _field("Completed (UTC)", _optional_time(execution.completed_at)),
        _field("Events", str(event_count)),
        _field("Evidence items", str(len(ctx.evidence))),
    ]


def _timeline(events: list[TimelineEvent], lines: list[str], stream: list[str]) -> None:
    """Append the timeline table to ``lines`` and the canonical stream lines to ``stream`` in one pass."""
    lines += ["## Timeline", ""]
    if not events:
        lines.append("No events recorded.")
        return
    lines += ["| Seq | Occurred (UTC) | Event type | Actor | Payload |", "| ---: | --- | --- | --- | --- |"]
    # Hot loop for 100k-event timelines: bind the helpers locally and format each datetime and payload once.
    escape, dumps, to_utc, as_dict = escape_inline, _canonical_json_str, utc_iso_compact, _as_dict
    # The encoder's \u00XX escapes of controls are decoded so they show as <U+00XX>; only when there is one.
    decoded, json_escape = textpolicy.json_controls_decoded, "\\u00"
    add_row, add_stream = lines.append, stream.append
    for event in events:
        occurred_at = to_utc(event.occurred_at)
        payload_json = dumps(as_dict(event.payload))
        add_stream(_event_stream_line(event, occurred_at, payload_json))
        cell = escape(decoded(payload_json) if json_escape in payload_json else payload_json)
        add_row(
            f"| {int(event.sequence)} | {occurred_at} | {escape(event.event_type)} | "
            f"{escape(event.actor_name) or 'system'} | {cell} |"
        )


def _evidence_body(item: EvidenceItem) -> list[str]:
    if item.event is not None:
        event = item.event
        return [
            _field("Sequence", str(int(event.sequence))),
            _field("Event type", escape_inline(event.event_type)),
            _field("Actor", escape_inline(event.actor_name) or "system"),
            _field("Occurred (UTC)", utc_iso_compact(event.occurred_at)),
            "",
            *inert_json_block(_as_dict(event.payload)),
        ]
    if item.markdown is not None:
        return inert_block(item.markdown, "markdown")
    if item.data is not None:
        return inert_json_block(item.data)
    return []


def _evidence_sections(evidence: list[EvidenceItem]) -> list[str]:
    by_kind: dict[EvidenceKind, list[EvidenceItem]] = {kind: [] for kind in EVIDENCE_KIND_ORDER}
    for item in evidence:
        by_kind[EvidenceKind(item.kind)].append(item)
    lines: list[str] = []
    for kind in EVIDENCE_KIND_ORDER:
        lines += [f"## Evidence: {_KIND_HEADINGS[kind]}", ""]
        if not by_kind[kind]:
            lines += ["None selected.", ""]
            continue
        for item in by_kind[kind]:
            lines += [
                f"### {escape_inline(item.title) or '(untitled)'}",
                "",
                _field("Evidence id", escape_inline(str(item.id))),
                _field("Size (bytes)", str(int(item.size))),
                _field("sha256", f"`{item.sha256}`"),
                _field("Created (UTC)", utc_iso_compact(item.created_at)),
            ]
            body = _evidence_body(item)
            if body:
                lines += ["", *body]
            lines.append("")
    return lines


def _digests(manifest: list[dict[str, JsonValue]], snapshot_hash: str | None, stream: list[str]) -> list[str]:
    events_digest = hashlib.sha256("".join(stream).encode()).hexdigest()
    return [
        DIGESTS_HEADING,
        "",
        _field("Evidence manifest sha256", f"`{manifest_digest(manifest)}`"),
        _field("Evidence items", str(len(manifest))),
        _field("Template snapshot sha256", f"`{snapshot_hash}`" if snapshot_hash else "none"),
        _field("Events", str(len(stream))),
        _field("Events stream sha256", f"`{events_digest}`"),
        "",
        "Signatures bind the sha256 of this text (up to and including this section) followed by a NUL byte and",
        "the canonical JSON evidence manifest, prefixed with the domain tag `dossier-narrative-digest:v1`.",
    ]


def _render(ctx: NarrativeContext, *, preview: bool) -> str:
    events = _sorted_events(ctx.events)
    evidence = _sorted_evidence(ctx.evidence)
    lines = _title_block(ctx, preview=preview)
    lines += ["", *_execution_summary(ctx, len(events)), ""]
    stream: list[str] = []
    _timeline(events, lines, stream)
    lines += ["", *_evidence_sections(evidence)]
    lines += _digests(evidence_manifest(evidence), ctx.export.template_snapshot_hash, stream)
    return "\n".join(lines) + "\n"


def render_for_approval(ctx: NarrativeContext) -> str:
    """The narrative as signed: everything but the approval record (the input of :func:`narrative_digest`)."""
    return _render(ctx, preview=False)


def render_preview_narrative(ctx: NarrativeContext) -> str:
    """Same renderer for an unsaved preview: marked as such, export id, version and snapshot optional."""
    return _render(ctx, preview=True)


def signature_sort_key(signature: Signature) -> tuple[int, int, str, str, str]:
    return (
        signature.iteration,
        signature.stage_index,
        utc_iso_compact(signature.signed_at),
        signature.signer_name,
        signature.digest,
    )


def _signature_lines(signature: Signature, escape: Callable[[str], str]) -> list[str]:
    status = "superseded (invalidated by a stage reset)" if signature.superseded else "current"
    suffix = " (superseded)" if signature.superseded else ""
    stage = escape(signature.stage_name) or "(unnamed stage)"
    return [
        f"### Stage {int(signature.stage_index)}: {stage}, iteration {int(signature.iteration)}{suffix}",
        "",
        _field("Decision", str(Decision(signature.decision))),
        _field("Signer", escape(signature.signer_name)),
        _field("Required role", escape(signature.required_role)),
        _field("Signed at (UTC)", utc_iso_compact(signature.signed_at)),
        _field("Meaning", escape(signature.meaning)),
        _field("Comment", escape(signature.comment) or "none"),
        _field("Digest signed", f"`{signature.digest}`"),
        _field("Status", status),
        "",
    ]


def render_approval_record(signatures: Iterable[Signature], *, inert_text: bool = True) -> str:
    """The approval record: every signature, superseded ones included and marked, in ladder order.

    ``inert_text=False`` renders names, meanings and comments the way bundle format 1 did (control pictures for
    C0 controls, format characters as they are), so that bundles packaged before the text policy replay
    byte-identical; everything new is rendered inert.
    """
    escape = escape_inline if inert_text else escape_inline_v1
    ordered = sorted(signatures, key=signature_sort_key)
    lines = [APPROVAL_RECORD_HEADING, ""]
    if not ordered:
        lines += ["No signatures recorded.", ""]
    for signature in ordered:
        lines += _signature_lines(signature, escape)
    return "\n".join(lines).removesuffix("\n") + "\n"


def render_packaged(ctx: NarrativeContext, signatures: Iterable[Signature]) -> str:
    """``narrative.md``: the approval text, a blank line, then the approval record.

    Raises :class:`NarrativeIntegrityError` when a current (not superseded) signature bound another digest:
    packaging it would ship a signature that does not cover the text.
    """
    signatures = list(signatures)
    approval_text = render_for_approval(ctx)
    digest = narrative_digest(approval_text, evidence_manifest(ctx.evidence))
    for signature in signatures:
        if not signature.superseded and signature.digest != digest:
            raise NarrativeIntegrityError(
                f"signature of stage {signature.stage_index} binds {signature.digest}, narrative is {digest}"
            )
    return approval_text + "\n" + render_approval_record(signatures)


def split_packaged(packaged: str) -> tuple[str, str]:
    """Split ``narrative.md`` into (approval text, approval record) to recompute :func:`narrative_digest`.

    The split is at the last approval-record heading line: anything looking like one earlier can only sit inside
    a fenced evidence body, because inline text is escaped.
    """
    marker = "\n\n" + APPROVAL_RECORD_HEADING + "\n"
    index = packaged.rfind(marker)
    if index < 0:
        raise ValueError("no approval record in this narrative")
    return packaged[: index + 1], packaged[index + 2 :]
