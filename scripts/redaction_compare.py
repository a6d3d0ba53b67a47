"""Which secret types our redaction detectors and detect-secrets' plugins each catch, on the planted corpus of
tests/exports/secrets_corpus.py. Prints the Markdown table kept in docs/redaction.md.

usage: .venv/bin/python scripts/redaction_compare.py      (needs the dev dependencies: detect-secrets)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exports.redaction import Redactor  # noqa: E402
from tests.exports.secrets_corpus import PLANTED  # noqa: E402


def detect_secrets_plugins(line: str) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sample.txt"
        path.write_text(line + "\n", encoding="utf-8")
        result = subprocess.run(  # noqa: S603
            [str(Path(sys.executable).with_name("detect-secrets")), "scan", "--all-files", str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=directory,
        )
    found = json.loads(result.stdout)["results"]
    return sorted({item["type"] for items in found.values() for item in items})


def main() -> None:
    redactor = Redactor()
    print("| planted | ours (type) | detect-secrets (plugins) |")
    print("|---|---|---|")
    for kind, line, secret in PLANTED:
        result = redactor.redact(line)
        ours = ", ".join(result.counts) if secret not in result.text else "—"
        theirs = ", ".join(detect_secrets_plugins(line)) or "—"
        print(f"| {kind} | {ours} | {theirs} |")


if __name__ == "__main__":
    main()
