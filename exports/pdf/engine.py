"""Compile one Typst part of the rendition in a process of its own (docs/exports.md, "The rendition").

Run as ``python exports/pdf/engine.py TEMPLATE FONT_DIRECTORY`` (``dossier.typ`` or ``timeline.typ``; a
directory holding exactly the font files to use) with the template's data as UTF-8 JSON on standard input,
passed to Typst as it is (``sys.inputs.data``); the PDF/A-3b bytes come out on standard output (exit 0), a
compile error on standard error (exit 1).

A process per part because the Typst library keeps every compilation's layout caches for the life of the
process: a long-lived worker would grow by about 15 KB per timeline event rendered, for ever.

Fonts are exactly those of the directory given (the caller links the configured files into a private one) and
the system's fonts are never searched, so the output does not depend on what else the machine has installed.
The document's dates come from the data, and the document id from its content, so the same request gives the
same bytes.

No Django here, nothing but ``os``, ``sys`` and ``typst``: the process starts in a fraction of a second.
"""

from __future__ import annotations

import os
import sys

TEMPLATES = os.path.dirname(os.path.abspath(__file__))


def compile_part(template: str, font_dir: str, data: str) -> bytes:
    import typst

    return typst.compile(
        os.path.join(TEMPLATES, template),
        root=TEMPLATES,
        font_paths=[font_dir],
        ignore_system_fonts=True,
        sys_inputs={"data": data},
        pdf_standards=["a-3b"],
    )


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("dossier.typ", "timeline.typ") or not os.path.isdir(sys.argv[2]):
        print("usage: engine.py dossier.typ|timeline.typ FONT_DIRECTORY < data.json", file=sys.stderr)
        return 1
    try:
        pdf = compile_part(sys.argv[1], sys.argv[2], sys.stdin.buffer.read().decode("utf-8"))
    except Exception as exc:  # typst raises its own error types; the message is what the caller needs
        print(f"typst: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(pdf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
