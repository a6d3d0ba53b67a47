import hashlib
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from exports.narratives import (
    APPROVAL_RECORD_HEADING,
    EVIDENCE_KIND_ORDER,
    Decision,
    EvidenceItem,
    EvidenceKind,
    ExecutionInfo,
    ExportMeta,
    NarrativeContext,
    NarrativeIntegrityError,
    Signature,
    TimelineEvent,
    canonical_json,
    escape_inline,
    escape_inline_v1,
    events_stream_digest,
    evidence_manifest,
    fenced_block,
    narrative_digest,
    render_approval_record,
    render_for_approval,
    render_packaged,
    render_preview_narrative,
    split_packaged,
)
from textpolicy.utc import utc_iso_compact

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
FORBIDDEN_TOKENS = {"link_open", "image", "html_inline", "html_block", "s_open"}


def markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def headings(text: str) -> list[str]:
    tokens = markdown().parse(text)
    return [tokens[i + 1].content for i, token in enumerate(tokens) if token.type == "heading_open"]


def token_types(text: str) -> set[str]:
    types = set()
    for token in markdown().parse(text):
        types.add(token.type)
        types.update(child.type for child in token.children or ())
    return types


def sha(char: str) -> str:
    return char * 64


def event(sequence: int, payload: dict | None = None, **changes) -> TimelineEvent:
    base = TimelineEvent(sequence, "step.recorded", "Ada Lovelace", T0 + timedelta(minutes=sequence), payload or {})
    return replace(base, **changes)


def evidence_set() -> list[EvidenceItem]:
    return [
        EvidenceItem(EvidenceKind.QC_METRIC, 7, "Purity", 40, sha("c"), T0, data={"purity": 0.98, "batch": "B1"}),
        EvidenceItem(EvidenceKind.FILE, 10, "raw.csv", 2048, sha("a"), T0),
        EvidenceItem(EvidenceKind.FILE, 9, "plate.png", 4096, sha("b"), T0),
        EvidenceItem(EvidenceKind.NOTEBOOK_ENTRY, 3, "Day 1", 120, sha("d"), T0, markdown="# Observations\n\nok"),
        EvidenceItem(EvidenceKind.TIMELINE_EVENT, 2, "Override", 10, sha("e"), T0, event=event(2, {"step": 4})),
        EvidenceItem(EvidenceKind.ANALYTICS_SNAPSHOT, 1, "Yield", 30, sha("f"), T0, data={"yield": [1, 2]}),
        EvidenceItem(EvidenceKind.REMEDIATION_REPORT, 4, "CAPA", 60, sha("0"), T0, markdown="Fixed."),
    ]


def context(events=None, evidence=None, **export_changes) -> NarrativeContext:
    execution = ExecutionInfo(
        id=42,
        title="PCR run",
        team_slug="bio",
        team_name="Biology",
        protocol_template_key="pcr-v2",
        status="completed",
        owner_name="Ada Lovelace",
        created_at=T0,
        started_at=T0,
        completed_at=T0 + timedelta(hours=2),
    )
    export = ExportMeta(
        export_id=5,
        version=2,
        template_snapshot_id=11,
        template_snapshot_hash=sha("9"),
        classification="Confidential",
        notes="",
        author_name="Grace Hopper",
        created_at=T0 + timedelta(hours=3),
    )
    events = [event(3), event(1, {"b": 2, "a": 1}), event(2)] if events is None else events
    return NarrativeContext(
        execution, events, evidence_set() if evidence is None else evidence, replace(export, **export_changes)
    )


def signature(digest: str, **changes) -> Signature:
    base = Signature(
        stage_index=1,
        stage_name="QA review",
        required_role="qa",
        signer_name="Rosalind Franklin",
        signed_at=T0 + timedelta(hours=4),
        meaning="Reviewed and approved",
        comment="Looks right",
        digest=digest,
        decision=Decision.APPROVE,
    )
    return replace(base, **changes)


def digest_of(ctx: NarrativeContext) -> str:
    return narrative_digest(render_for_approval(ctx), evidence_manifest(ctx.evidence))


# -- structure ---------------------------------------------------------------------------------------------------


def test_sections_present_and_ordered():
    found = headings(render_for_approval(context()))
    top = [h for h in found if not h.startswith(("Purity", "raw", "plate", "Day", "Override", "Yield", "CAPA"))]
    assert top == [
        "Narrative dossier: PCR run",
        "Execution summary",
        "Timeline",
        "Evidence: Files",
        "Evidence: Notebook entries",
        "Evidence: Analytics snapshots",
        "Evidence: QC metrics",
        "Evidence: Remediation reports",
        "Evidence: Timeline events",
        "Digests",
    ]
    assert APPROVAL_RECORD_HEADING[3:] not in found


def test_evidence_items_sit_under_their_kind_sorted_by_id():
    found = headings(render_for_approval(context()))
    assert found.index("plate.png") < found.index("raw.csv") < found.index("Evidence: Notebook entries")
    assert found.index("Evidence: QC metrics") < found.index("Purity") < found.index("Evidence: Remediation reports")


def test_timeline_rows_follow_sequence_not_input_order():
    text = render_for_approval(context(events=[event(30), event(4), event(17)]))
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(row.split("|")[1]) for row in rows] == [4, 17, 30]


def test_empty_kinds_still_get_their_section():
    text = render_for_approval(context(evidence=[], events=[]))
    assert text.count("None selected.") == len(EVIDENCE_KIND_ORDER)
    assert "No events recorded." in text


def test_payload_rendered_as_compact_sorted_json_on_one_line():
    text = render_for_approval(context(events=[event(1, {"z": [1, {"y": "é"}], "a": None})]))
    assert '| {"a":null,"z":\\[1,{"y":"é"}\\]} |' in text


def test_text_ends_with_single_newline_and_uses_lf():
    text = render_for_approval(context())
    assert text.endswith("\n") and not text.endswith("\n\n") and "\r" not in text


def test_times_rendered_in_utc_with_z():
    plus_two = timezone(timedelta(hours=2))
    ctx = context(events=[event(1, occurred_at=datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=plus_two))])
    assert "| 2024-05-01T10:00:00.000005Z |" in render_for_approval(ctx)
    assert utc_iso_compact(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00Z"


# -- determinism and digests ---------------------------------------------------------------------------------------


def test_same_inputs_same_bytes_whatever_the_evidence_and_event_order():
    ctx = context()
    shuffled = list(ctx.evidence)
    random.Random(3).shuffle(shuffled)
    other = replace(ctx, evidence=shuffled, events=list(reversed(ctx.events)))
    assert render_for_approval(ctx) == render_for_approval(other)
    assert evidence_manifest(ctx.evidence) == evidence_manifest(shuffled)


def test_payload_key_order_does_not_matter():
    first = context(events=[event(1, {"a": 1, "b": {"c": 2, "d": 3}})])
    second = context(events=[event(1, {"b": {"d": 3, "c": 2}, "a": 1})])
    assert render_for_approval(first) == render_for_approval(second)


def test_manifest_is_sorted_by_kind_order_then_id():
    manifest = evidence_manifest(evidence_set())
    assert [(entry["kind"], entry["id"]) for entry in manifest] == [
        ("file", 9),
        ("file", 10),
        ("notebook_entry", 3),
        ("analytics_snapshot", 1),
        ("qc_metric", 7),
        ("remediation_report", 4),
        ("timeline_event", 2),
    ]
    assert set(manifest[0]) == {"kind", "id", "title", "size", "sha256"}


def test_duplicate_evidence_or_sequence_is_refused():
    item = evidence_set()[1]
    with pytest.raises(ValueError, match="selected twice"):
        evidence_manifest([item, item])
    with pytest.raises(ValueError, match="appears twice"):
        render_for_approval(context(events=[event(1), event(1)]))


def test_canonical_json_bytes():
    assert canonical_json({"b": "é", "a": [1, 2]}) == '{"a":[1,2],"b":"é"}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_narrative_digest_recomputable_as_documented():
    ctx = context()
    approval_text = render_for_approval(ctx)
    manifest = evidence_manifest(ctx.evidence)
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    expected = hashlib.sha256(
        b"dossier-narrative-digest:v1\n" + approval_text.encode("utf-8") + b"\x00" + manifest_bytes
    ).hexdigest()
    assert narrative_digest(approval_text, manifest) == expected


def test_digests_section_values_recomputable():
    ctx = context()
    text = render_for_approval(ctx)
    manifest = evidence_manifest(ctx.evidence)
    assert f"- **Evidence manifest sha256:** `{hashlib.sha256(canonical_json(manifest)).hexdigest()}`" in text
    assert f"- **Events stream sha256:** `{events_stream_digest(ctx.events)}`" in text
    assert "- **Events:** 3" in text
    assert f"- **Template snapshot sha256:** `{sha('9')}`" in text


def test_events_stream_is_canonical_json_lines():
    events = [event(2, {"k": "v"}), event(1, {"n": 1}, actor_name='Zoë "Z"')]
    stream = b"".join(
        canonical_json(
            {
                "sequence": item.sequence,
                "event_type": item.event_type,
                "actor": item.actor_name,
                "occurred_at": utc_iso_compact(item.occurred_at),
                "payload": item.payload,
            }
        )
        + b"\n"
        for item in sorted(events, key=lambda e: e.sequence)
    )
    assert events_stream_digest(events) == hashlib.sha256(stream).hexdigest()


def test_digest_changes_with_any_bound_input():
    ctx = context()
    base = digest_of(ctx)
    assert digest_of(replace(ctx, events=[*ctx.events, event(9)])) != base
    changed_item = replace(evidence_set()[1], sha256=sha("7"))
    assert digest_of(replace(ctx, evidence=[changed_item, *evidence_set()[2:]])) != base
    assert narrative_digest(render_for_approval(ctx), evidence_manifest(ctx.evidence)[1:]) != base


# -- packaging and the approval record ---------------------------------------------------------------------------


def test_packaged_is_approval_text_plus_record_and_splits_back():
    ctx = context()
    digest = digest_of(ctx)
    signatures = [signature(digest), signature(digest, stage_index=2, stage_name="Release", signer_name="Marie")]
    packaged = render_packaged(ctx, signatures)
    approval_text, record = split_packaged(packaged)
    assert approval_text == render_for_approval(ctx)
    assert record == render_approval_record(signatures)
    assert narrative_digest(approval_text, evidence_manifest(ctx.evidence)) == digest
    assert headings(packaged).count("Approval record") == 1


def test_approval_record_lists_every_signature_field():
    digest = sha("1")
    record = render_approval_record([signature(digest, comment="fine | really", decision=Decision.REJECT)])
    assert "- **Signer:** Rosalind Franklin" in record
    assert "- **Signed at (UTC):** 2024-05-01T13:30:00Z" in record
    assert "- **Meaning:** Reviewed and approved" in record
    assert "- **Comment:** fine \\| really" in record
    assert f"- **Digest signed:** `{digest}`" in record
    assert "- **Decision:** reject" in record
    assert "### Stage 1: QA review, iteration 1" in record


def test_superseded_signatures_listed_and_marked_in_ladder_order():
    ctx = context()
    digest = digest_of(ctx)
    old = signature(digest, stage_index=2, stage_name="Release", superseded=True)
    current = [signature(digest), signature(digest, stage_index=2, stage_name="Release", iteration=2)]
    record = render_approval_record([*current, old])
    found = headings(record)
    assert found == [
        "Approval record",
        "Stage 1: QA review, iteration 1",
        "Stage 2: Release, iteration 1 (superseded)",
        "Stage 2: Release, iteration 2",
    ]
    assert record.count("- **Status:** superseded") == 1
    assert render_packaged(ctx, [*current, replace(old, digest=sha("3"))])


def test_packaging_refuses_a_current_signature_over_another_digest():
    with pytest.raises(NarrativeIntegrityError):
        render_packaged(context(), [signature(sha("3"))])


def test_no_signatures_still_renders_the_record():
    assert render_approval_record([]) == f"{APPROVAL_RECORD_HEADING}\n\nNo signatures recorded.\n"


def test_preview_is_marked_and_needs_no_export_identity():
    ctx = context(export_id=None, version=None, template_snapshot_id=None, template_snapshot_hash=None)
    text = render_preview_narrative(ctx)
    assert headings(text)[0] == "Narrative preview: PCR run"
    assert "**Preview.**" in text and "- **Export:**" not in text
    with pytest.raises(ValueError, match="export id and version"):
        render_for_approval(ctx)


def test_input_validation():
    with pytest.raises(ValueError, match="timezone-aware"):
        event(1, occurred_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="sha256"):
        EvidenceItem(EvidenceKind.FILE, 1, "x", 1, "ABC", T0)
    with pytest.raises(ValueError, match="does not fit"):
        EvidenceItem(EvidenceKind.QC_METRIC, 1, "x", 1, sha("a"), T0, markdown="text")
    with pytest.raises(ValueError, match="exactly one"):
        EvidenceItem(EvidenceKind.REMEDIATION_REPORT, 1, "x", 1, sha("a"), T0, markdown="a", data={"b": 1})
    with pytest.raises(ValueError, match="classification"):
        context(classification="Secret")
    with pytest.raises(ValueError):
        signature(sha("1"), decision="maybe")


# -- injection -----------------------------------------------------------------------------------------------------

HOSTILE = [
    "# Heading",
    "[x](http://evil)",
    "![img](http://evil/i.png)",
    "<script>alert(1)</script>",
    "<http://evil>",
    "| a | b |",
    "line\n## Approval record\n",
    APPROVAL_RECORD_HEADING,
    "## Digests",
    "```\n# out of the fence\n```",
    "~~~\n<b>x</b>",
    "a\r# carriage",
    "x\u2028# separator",
    "\\",
    "&lt;b&gt;",
    "[ref]: http://evil",
    "~~strike~~",
]


def hostile_context(text: str) -> NarrativeContext:
    items = [
        EvidenceItem(EvidenceKind.FILE, 1, text, 1, sha("a"), T0),
        EvidenceItem(EvidenceKind.NOTEBOOK_ENTRY, 2, text, 1, sha("b"), T0, markdown=text),
        EvidenceItem(EvidenceKind.QC_METRIC, 3, text, 1, sha("c"), T0, data={text: text}),
        EvidenceItem(EvidenceKind.REMEDIATION_REPORT, 4, text, 1, sha("d"), T0, markdown=text + "\n````"),
        EvidenceItem(EvidenceKind.TIMELINE_EVENT, 5, text, 1, sha("e"), T0, event=event(1, {text: text})),
    ]
    ctx = context(
        events=[event(1, {text: text, "nested": [text]}, event_type=text, actor_name=text)],
        evidence=items,
        notes=text,
        author_name=text,
    )
    return replace(ctx, execution=replace(ctx.execution, title=text, team_name=text, owner_name=text))


def assert_structure_intact(ctx: NarrativeContext, text: str) -> None:
    packaged = render_packaged(ctx, [signature(digest_of(ctx), comment=text, meaning=text, signer_name=text)])
    tokens = markdown().parse(packaged)
    assert not FORBIDDEN_TOKENS & token_types(packaged)
    found = headings(packaged)
    expected_count = 1 + 2 + len(EVIDENCE_KIND_ORDER) + len(ctx.evidence) + 1 + 1 + 1
    assert len(found) == expected_count
    assert found.count("Approval record") == 1 and found.count("Digests") == 1
    assert found[-2:] == ["Approval record", found[-1]] and found[-3] == "Digests"
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == len(ctx.events) + 1
    assert len([t for t in tokens if t.type in ("td_open", "th_open")]) == 5 * len(rows)
    assert split_packaged(packaged)[0] == render_for_approval(ctx)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_cannot_change_structure(text):
    ctx = hostile_context(text)
    assert_structure_intact(ctx, text)


def test_fence_is_longer_than_any_backtick_run():
    lines = fenced_block("a ````` b\n```", "markdown")
    assert lines[0] == "``````markdown" and lines[-1] == "``````"


def test_escape_inline_neutralizes_markdown_and_line_breaks():
    assert escape_inline("plain text 1.0") == "plain text 1.0"
    assert escape_inline("*a* [b](c) <d> |e| #f `g` \\ &h; ~i~ !j") == (
        "\\*a\\* \\[b\\](c) \\<d\\> \\|e\\| \\#f \\`g\\` \\\\ \\&h; \\~i\\~ \\!j"
    )
    assert escape_inline("a\nb\rc\td\x00") == "a\u240ab<U+000D>c\u2409d<U+0000>"


def test_escape_inline_shows_control_and_format_characters_as_visible_escapes():
    assert escape_inline("a\u202eb\u200bc\x1b[31md\u2066e\ufeff\x85") == (
        "a<U+202E>b<U+200B>c<U+001B>\\[31md<U+2066>e<U+FEFF><U+0085>"
    )
    assert escape_inline("tag\U000e0041") == "tag<U+E0041>"
    assert escape_inline("line\u2028sep") == "line\u2424sep"


def test_format_1_escaping_is_kept_for_old_approval_records():
    assert escape_inline_v1("a\x1b\u202e\x00") == "a\u241b\u202e\u2400"
    hostile = signature(sha("1"), comment="ok\x1b[31m\u202e", signer_name="Eve\u200b")
    assert "ok\u241b\\[31m\u202e" in render_approval_record([hostile], inert_text=False)
    assert "Eve\u200b" in render_approval_record([hostile], inert_text=False)
    current = render_approval_record([hostile])
    assert "ok<U+001B>\\[31m<U+202E>" in current and "Eve<U+200B>" in current
    assert "\x1b" not in current and "\u202e" not in current and "\u200b" not in current


def test_control_and_format_characters_are_inert_inline_and_in_fenced_blocks():
    hostile = "x\u202ey\u200bz\x1b[31mred\x9b2J"
    items = [
        EvidenceItem(EvidenceKind.NOTEBOOK_ENTRY, 2, hostile, 1, sha("b"), T0, markdown=f"# Body\r\n{hostile}\n"),
        EvidenceItem(EvidenceKind.QC_METRIC, 3, "QC", 1, sha("c"), T0, data={hostile: [hostile]}),
        EvidenceItem(EvidenceKind.TIMELINE_EVENT, 5, "ev", 1, sha("e"), T0, event=event(1, {"note": hostile})),
    ]
    ctx = context(events=[event(1, {"note": hostile, hostile: 1})], evidence=items, notes=hostile)
    text = render_packaged(ctx, [signature(digest_of(ctx), comment=hostile)])
    for char in ("\u202e", "\u200b", "\x1b", "\x9b", "\r"):
        assert char not in text
    assert "\\u001b" not in text  # JSON's own escape is shown the same way as the raw character
    shown = "x<U+202E>y<U+200B>z<U+001B>"
    # notes, notebook body, QC data, cited event payload, timeline cell, approval record
    assert text.count(shown) >= 7
    assert "# Body\n" + shown in text  # CRLF still ends a line in a notebook body, not shown as <U+000D>
    assert_structure_intact(ctx, hostile)


def test_json_escape_of_a_backslash_is_not_mistaken_for_a_control_escape():
    ctx = context(events=[event(1, {"path": "C:\\u001b"})], evidence=[])
    assert "<U+001B>" not in render_for_approval(ctx)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80), st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3))
def test_arbitrary_strings_never_add_headings_links_or_html(text, payload):
    ctx = hostile_context(text)
    ctx = replace(ctx, events=[event(1, payload, actor_name=text), event(2, {text: payload})])
    assert_structure_intact(ctx, text)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=15, unique=True), st.randoms())
def test_rendering_independent_of_input_order(sequences, rng):
    events = [event(s, {"s": s}) for s in sequences]
    shuffled = events[:]
    rng.shuffle(shuffled)
    items = evidence_set()
    rng.shuffle(items)
    assert render_for_approval(context(events=events)) == render_for_approval(context(events=shuffled, evidence=items))
