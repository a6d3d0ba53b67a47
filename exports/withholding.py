"""The stored narrative as a reader below some of its evidence sees it under the ``redact`` clearance policy
(docs/clearance.md): each evidence section (``### <title>`` and its body) whose evidence is withheld is replaced
by a ``[WITHHELD: <label> evidence]`` marker, and its manifest descriptor loses its title. Pure text in, text
out: the stored narrative, its digest and its signatures stay as they are.

The narrative's layout is fixed by ``exports.narratives``: evidence sections sit under ``## Evidence: <kind>``
headings, each starts with a renderer-owned ``### `` heading followed by the ``Evidence id`` field, and user text
only ever appears escaped or inside fenced blocks, so a heading inside a fence is not a section."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from exports.narratives import _KIND_HEADINGS, escape_inline

_FENCE_OPEN = re.compile(r"^(`{3,}|~{3,})")
_EVIDENCE_ID = re.compile(r"^- \*\*Evidence id:\*\* (.*)$")
_KIND_BY_HEADING = {f"## Evidence: {heading}": str(kind) for kind, heading in _KIND_HEADINGS.items()}

# (kind, evidence id as written) -> the withheld evidence's label
Withheld = Mapping[tuple[str, str], str]


def withheld_marker(label: str) -> str:
    return f"[WITHHELD: {label} evidence]"


def _unfenced(lines: list[str]):
    """``(index, line)`` of the lines outside fenced blocks."""
    fence = ""
    for index, line in enumerate(lines):
        if fence:
            closing = line.strip()
            if closing and set(closing) == {fence[0]} and len(closing) >= len(fence):
                fence = ""
            continue
        opened = _FENCE_OPEN.match(line)
        if opened:
            fence = opened.group(1)
        else:
            yield index, line


def _sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` of every evidence section (headings outside fences), in order."""
    starts: list[tuple[str, int]] = []
    boundaries: list[int] = []
    kind: str | None = None
    for index, line in _unfenced(lines):
        if line.startswith("## "):
            kind = _KIND_BY_HEADING.get(line)
            boundaries.append(index)
        elif line.startswith("### ") and kind is not None:
            starts.append((kind, index))
            boundaries.append(index)
    boundaries.append(len(lines))
    return [(kind, begin, boundaries[bisect_right(boundaries, begin)]) for kind, begin in starts]


def narrative_withholding(markdown: str, withheld: Withheld) -> str:
    """``markdown`` with the sections of ``withheld`` evidence replaced by their marker."""
    if not withheld:
        return markdown
    lines = markdown.split("\n")
    for kind, start, end in reversed(_sections(lines)):
        found = _EVIDENCE_ID.match(lines[start + 2]) if start + 2 < end else None
        if found is None:
            continue
        label = next((value for (k, i), value in withheld.items() if k == kind and escape_inline(i) == found[1]), None)
        if label is not None:
            lines[start:end] = [f"### {escape_inline(withheld_marker(label))}", ""]
    return "\n".join(lines)


def manifest_withholding(manifest: Sequence[Mapping[str, Any]], withheld: Withheld) -> list[dict[str, Any]]:
    """The manifest (or attachment rows) with the title of ``withheld`` evidence replaced by its marker, and its
    bundle path, which is named after the title, left out; ids, sizes and digests stay."""
    rows = []
    for row in manifest:
        label = withheld.get((str(row.get("kind")), str(row.get("id"))))
        if label is None:
            rows.append(dict(row))
            continue
        hidden = {"title": withheld_marker(label)}
        rows.append({**row, **hidden, **({"bundle_path": ""} if "bundle_path" in row else {})})
    return rows
