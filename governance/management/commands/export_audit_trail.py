"""export_audit_trail: the audit trail for auditors as NDJSON or CSV, with the API's filters (docs/audit-trail.md).

Rows carry ``sequence``, ``prev_hash`` and ``hash``; the segment's first and last rows are reported on stderr so
the file can be checked against the chain with ``docs/verify_audit_segment.py``. ``--actor`` filters rows by the
actor's username. Exit codes: 0 done, 1 error (bad arguments, unknown team, unwritable output).
"""

import sys
from datetime import datetime

from django.core.management.base import CommandError

from config.commands import DossierCommand
from governance.models import Team
from governance.selectors.audit_trail import (
    AuditTrailFilters,
    audit_events_filtered,
    audit_rows,
    audit_segment,
    csv_chunks,
    ndjson_lines,
)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not an ISO 8601 date or time") from exc
    if moment.tzinfo is None:
        raise CommandError(f"{value!r} has no time zone (add Z or +00:00)")
    return moment


class Command(DossierCommand):
    help = "Export the audit trail as NDJSON or CSV with its chain fields. Exit 0 done, 1 error."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
        parser.add_argument("--output", help="file to write (default: stdout)")
        parser.add_argument("--team", help="team slug")
        parser.add_argument("--actor", help="rows by this username")
        parser.add_argument("--action-prefix", help="actions starting with this")
        parser.add_argument("--object-type")
        parser.add_argument("--object-id")
        parser.add_argument("--since", help="ISO 8601 with a time zone; rows created at or after")
        parser.add_argument("--until", help="ISO 8601 with a time zone; rows created before")
        parser.add_argument("--after-sequence", type=int)

    def handle(self, *args, **options):
        team_id = None
        if options["team"]:
            team_id = Team.objects.filter(slug=options["team"]).values_list("pk", flat=True).first()
            if team_id is None:
                raise CommandError(f"no team {options['team']!r}")
        filters = AuditTrailFilters(
            actor=options["actor"],
            action_prefix=options["action_prefix"],
            object_type=options["object_type"],
            object_id=options["object_id"],
            since=_moment(options["since"]) if options["since"] else None,
            until=_moment(options["until"]) if options["until"] else None,
            after_sequence=options["after_sequence"],
        )
        qs = audit_events_filtered(filters=filters, team_id=team_id)
        segment = audit_segment(qs)
        if options["format"] == "ndjson":
            chunks = ndjson_lines(audit_rows(qs, until_sequence=segment.last_sequence))
        else:
            chunks = csv_chunks(qs, until_sequence=segment.last_sequence)
        try:
            if options["output"]:
                with open(options["output"], "wb") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
            else:
                self._to_stdout(chunks)
        except OSError as exc:
            raise CommandError(f"cannot write {options['output'] or 'stdout'}: {exc}") from exc
        summary = f"exported {segment.rows} row(s)"
        if segment.rows:
            summary += f"; first {segment.first_sequence} {segment.first_hash}"
            summary += f"; last {segment.last_sequence} {segment.last_hash}"
        self.stderr.write(summary)

    def _to_stdout(self, chunks) -> None:
        stream = getattr(self.stdout, "_out", sys.stdout)
        buffer = getattr(stream, "buffer", None)
        for chunk in chunks:
            if buffer is not None:
                buffer.write(chunk)
            else:
                stream.write(chunk.decode())
        stream.flush()
