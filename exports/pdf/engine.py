"""Compile one Typst part of the rendition in a process of its own (docs/exports.md, "The rendition").

Run as ``python exports/pdf/engine.py TEMPLATE FONT_FILE...`` (``dossier.typ`` or ``timeline.typ``) with the
template's data as UTF-8 JSON on standard input, passed to Typst as it is (``sys.inputs.data``); the PDF/A-3b
bytes come out on standard output (exit 0), a compile error on standard error (exit 1).

A process per part because the Typst library keeps every compilation's layout caches for the life of the
process: a long-lived worker would grow by about 15 KB per timeline event rendered, for ever.

Fonts are exactly the files named: they are linked into a private directory and the system's fonts are never
searched, so the output does not depend on what else the machine has installed. The document's dates come from
the data, and the document id from its content, so the same request gives the same bytes.

No Django here, nothing but the standard library and ``typst``: the process starts in a fraction of a second.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Final

TEMPLATES = Path(__file__).resolve().parent
PDF_STANDARD: Final = "a-3b"


def compile_part(template: str, fonts: list[str], data: str) -> bytes:
    import typst

    with tempfile.TemporaryDirectory(prefix="dossier-fonts-") as font_dir:
        for index, font in enumerate(fonts):
            os.symlink(os.path.abspath(font), os.path.join(font_dir, f"{index:02d}-{os.path.basename(font)}"))
        return typst.compile(
            str(TEMPLATES / template),
            root=str(TEMPLATES),
            font_paths=[font_dir],
            ignore_system_fonts=True,
            sys_inputs={"data": data},
            pdf_standards=[PDF_STANDARD],
        )


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in ("dossier.typ", "timeline.typ"):
        print("usage: engine.py dossier.typ|timeline.typ FONT_FILE... < data.json", file=sys.stderr)
        return 1
    template, fonts = sys.argv[1], sys.argv[2:]
    missing = [font for font in fonts if not os.path.isfile(font)]
    if missing:
        print(f"font files missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    try:
        pdf = compile_part(template, fonts, sys.stdin.buffer.read().decode("utf-8"))
    except Exception as exc:  # typst raises its own error types; the message is what the caller needs
        print(f"typst: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(pdf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
