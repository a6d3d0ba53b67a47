#!/usr/bin/env python3
"""Verify an exported segment of Dossier's audit trail, with nothing but the Python standard library.

usage: python3 verify_audit_segment.py FILE [--first-prev-hash HEX] [--last-hash HEX]

FILE is an export of ``GET /api/governance/audit-events?format=ndjson|csv`` or ``manage.py export_audit_trail``
(NDJSON when its first character is ``{``, CSV otherwise). For every row the script recomputes

    hash = sha256( canonical JSON of [sequence, created_at, actor_id, actor_username, action, object_type,
                                      object_id, team_id, payload, prev_hash] )

(canonical JSON: keys sorted, no spaces, UTF-8 text unescaped) and compares it with the row's ``hash``; for every
two rows with consecutive sequences it checks that the later row's ``prev_hash`` is the earlier row's ``hash``.
A filtered export skips sequences: links across a gap cannot be checked and are counted, not failed.
``--first-prev-hash`` also checks the first row's link (the hash of the row before the segment) and
``--last-hash`` the last row's hash (e.g. the ``X-Dossier-Segment-Last`` header, or today's chain head).

CSV cells that start with ``'`` had one quote added by the export (formula neutralization); it is removed here.

Exit codes: 0 every row and link holds, 3 a row or link is broken (the first one is named), 2 unreadable input.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys

FIELDS = (
    "sequence",
    "created_at",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "team_id",
    "payload",
    "prev_hash",
    "hash",
)


class Unreadable(Exception):
    pass


def _int_or_none(value):
    return None if value in ("", None) else int(value)


def _from_csv(handle):
    csv.field_size_limit(sys.maxsize)
    for line, cells in enumerate(csv.DictReader(handle), start=2):
        row = {key: (value[1:] if value.startswith("'") else value) for key, value in cells.items() if key}
        try:
            yield {
                **row,
                "sequence": int(row["sequence"]),
                "actor_id": _int_or_none(row["actor_id"]),
                "team_id": _int_or_none(row["team_id"]),
                "payload": json.loads(row["payload"]),
            }
        except (KeyError, ValueError) as exc:
            raise Unreadable(f"CSV line {line}: {exc}") from exc


def _from_ndjson(handle):
    for line, text in enumerate(handle, start=1):
        if text.strip():
            try:
                yield json.loads(text)
            except ValueError as exc:
                raise Unreadable(f"NDJSON line {line}: {exc}") from exc


def rows_of(path):
    handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller's generator end
    first = handle.read(1)
    handle.seek(0)
    return handle, (_from_ndjson(handle) if first == "{" else _from_csv(handle))


def row_hash(row) -> str:
    fields = [row[name] for name in FIELDS[:-1]]
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify(rows, *, first_prev_hash=None, last_hash=None):
    """(ok, message): the first broken row or link, or a summary."""
    previous = None
    count = links = gaps = 0
    for row in rows:
        count += 1
        missing = [name for name in FIELDS if name not in row]
        if missing:
            raise Unreadable(f"row {count} lacks {', '.join(missing)}")
        sequence = row["sequence"]
        if row_hash(row) != row["hash"]:
            return False, f"sequence {sequence}: the row's content does not match its hash"
        if previous is None:
            if first_prev_hash is not None and row["prev_hash"] != first_prev_hash:
                return False, f"sequence {sequence}: prev_hash is not the given --first-prev-hash"
        elif sequence <= previous["sequence"]:
            return False, f"sequence {sequence}: not after the previous row's {previous['sequence']}"
        elif sequence == previous["sequence"] + 1:
            links += 1
            if row["prev_hash"] != previous["hash"]:
                return False, f"sequence {sequence}: prev_hash is not the hash of row {previous['sequence']}"
        else:
            gaps += 1
        previous = row
    if last_hash is not None and (previous is None or previous["hash"] != last_hash):
        return False, "the last row's hash is not the given --last-hash"
    return True, f"{count} row(s) verified, {links} link(s) checked, {gaps} gap(s) between filtered rows"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Verify an exported segment of Dossier's audit trail.")
    parser.add_argument("file")
    parser.add_argument("--first-prev-hash")
    parser.add_argument("--last-hash")
    args = parser.parse_args(argv)
    try:
        handle, rows = rows_of(args.file)
        with handle:
            ok, message = verify(rows, first_prev_hash=args.first_prev_hash, last_hash=args.last_hash)
    except (OSError, Unreadable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(("ok: " if ok else "broken: ") + message)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
