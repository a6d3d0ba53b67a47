"""The audit trail for auditors (docs/audit-trail.md): filtered, team-scoped rows with their chain fields, and
their NDJSON and CSV renditions, streamed row by row from a server-side cursor.

Every row carries the fields its hash covers, formatted as the hash formats them, so the stand-alone verifier in
``docs/verify_audit_segment.py`` can recompute each row's hash and check the links between consecutive rows.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db import connection
from django.db.models import F, Func, QuerySet, TextField
from django.db.models.functions import Cast

from config.errors import PermissionDenied
from governance.choices import RoleKey
from governance.models import AuditEvent, Membership
from governance.selectors.teams import team_get_for_user
from governance.services.audit import AUDIT_COLUMN_NAMES, AUDIT_COLUMNS, _timestamp

AUDIT_TRAIL_ROLES = frozenset({RoleKey.AUDITOR, RoleKey.COMPLIANCE, RoleKey.ADMIN})
# The stored columns as the audit service declares them (hashed fields in the hash's order, then the row's hash),
# then the team's slug (not hashed; for reading).
COLUMNS = (*AUDIT_COLUMN_NAMES, "team")
_PAYLOAD = COLUMNS.index("payload")
# What each column is read as: the hash's own timestamp text, the payload as JSON text, the team's slug.
_READ_AS = {"created_at": "created_text", "payload": "payload_text", "team": "team__slug"}
# Spreadsheets run a cell that starts with one of these as a formula; the quote (also prefixed, so the rule can
# be undone exactly) makes it text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "'")


@dataclass(frozen=True)
class AuditTrailFilters:
    team: str | None = None
    actor: str | None = None
    action_prefix: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_sequence: int | None = None


@dataclass(frozen=True)
class Segment:
    """First and last rows of an export: the chain segment's bounds."""

    rows: int
    first_sequence: int | None
    first_hash: str | None
    last_sequence: int | None
    last_hash: str | None


def _filtered(qs: QuerySet[AuditEvent], filters: AuditTrailFilters) -> QuerySet[AuditEvent]:
    if filters.actor:
        qs = qs.filter(actor_username=filters.actor)
    if filters.action_prefix:
        qs = qs.filter(action__startswith=filters.action_prefix)
    if filters.object_type:
        qs = qs.filter(object_type=filters.object_type)
    if filters.object_id:
        qs = qs.filter(object_id=filters.object_id)
    if filters.since:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__lt=filters.until)
    if filters.after_sequence is not None:
        qs = qs.filter(sequence__gt=filters.after_sequence)
    return qs.order_by("sequence")


def audit_events_for_user(*, user, filters: AuditTrailFilters) -> QuerySet[AuditEvent]:
    """Rows of the teams where ``user`` is an auditor, compliance officer or admin (403 when none; a ``team`` filter
    naming a team the user is not in is a 404, one where they hold none of those roles a 403)."""
    allowed = Membership.objects.filter(user=user, role__key__in=AUDIT_TRAIL_ROLES).values_list("team_id", flat=True)
    team_ids = set(allowed)
    denied = PermissionDenied(
        f"Reading the audit trail needs one of the roles {', '.join(sorted(AUDIT_TRAIL_ROLES))} in the team.",
        details={"required_roles": sorted(AUDIT_TRAIL_ROLES)},
    )
    if filters.team:
        team = team_get_for_user(user=user, slug=filters.team)
        if team.pk not in team_ids:
            raise denied
        team_ids = {team.pk}
    if not team_ids:
        raise denied
    return _filtered(AuditEvent.objects.filter(team_id__in=team_ids), filters)


def audit_events_filtered(*, filters: AuditTrailFilters, team_id: int | None = None) -> QuerySet[AuditEvent]:
    """Every team's rows (or one team's): the operators' command, which runs with database rights."""
    qs = AuditEvent.objects.all() if team_id is None else AuditEvent.objects.filter(team_id=team_id)
    return _filtered(qs, filters)


def audit_segment(qs: QuerySet[AuditEvent]) -> Segment:
    bounds = list(qs.order_by("sequence").values_list("sequence", "hash")[:1]) + list(
        qs.order_by("-sequence").values_list("sequence", "hash")[:1]
    )
    if not bounds:
        return Segment(0, None, None, None, None)
    (first_sequence, first_hash), (last_sequence, last_hash) = bounds[0], bounds[-1]
    return Segment(qs.count(), first_sequence, first_hash, last_sequence, last_hash)


_PG_TIMESTAMP = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def _created_text_sql() -> Func:
    """``created_at`` as the hash formats it, formatted by PostgreSQL."""
    return Func(F("created_at"), template=f"to_char(%(expressions)s AT TIME ZONE 'UTC', '{_PG_TIMESTAMP}')")


def audit_rows(qs: QuerySet[AuditEvent], *, until_sequence: int | None = None, chunk_size: int = 5000) -> Iterator:
    """``COLUMNS`` tuples, ``created_at`` formatted as the hash formats it and ``payload`` as JSON text, streamed
    through a server-side cursor on PostgreSQL."""
    if until_sequence is not None:
        qs = qs.filter(sequence__lte=until_sequence)
    postgres = connection.vendor == "postgresql"
    created = _created_text_sql() if postgres else F("created_at")
    rows = qs.annotate(created_text=created, payload_text=Cast("payload", TextField())).values_list(
        *(_READ_AS.get(name, name) for name in COLUMNS)
    )
    iterator = rows.iterator(chunk_size=chunk_size)
    if postgres:
        return iterator
    created_at = COLUMNS.index("created_at")
    return ((*row[:created_at], _timestamp(row[created_at]), *row[created_at + 1 :]) for row in iterator)


def ndjson_lines(rows: Iterable[tuple]) -> Iterator[bytes]:
    dumps, fragment = orjson.dumps, orjson.Fragment
    for row in rows:
        record = dict(zip(COLUMNS, row, strict=True))
        record["payload"] = fragment(row[_PAYLOAD])
        yield dumps(record) + b"\n"


class _Echo:
    def write(self, value: str) -> str:
        return value


# The text columns a person or a client can influence; the rest are numbers, hex digests, timestamps and JSON
# objects, which never start with one of the prefixes.
_FREE_TEXT_NAMES = (*(column.name for column in AUDIT_COLUMNS if column.free_text), "team")
_FREE_TEXT = tuple(COLUMNS.index(name) for name in _FREE_TEXT_NAMES)


def _neutralized(row: tuple) -> tuple | list:
    if not any(row[i] and row[i][0] in FORMULA_PREFIXES for i in _FREE_TEXT):
        return row
    return [("'" + value) if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value for value in row]


def csv_chunks(qs: QuerySet[AuditEvent], *, until_sequence: int | None = None) -> Iterator[bytes]:
    """The CSV export of ``qs`` (header, then one line per row), as UTF-8 chunks.

    On PostgreSQL the database writes the CSV itself (``COPY (SELECT …) TO STDOUT``, with the formatting and the
    formula neutralization done in the ``SELECT``), so a million rows stream at close to ``COPY`` speed; elsewhere
    the rows go through Python's ``csv`` module with the same rules."""
    if connection.vendor != "postgresql":
        yield from (chunk.encode() for chunk in csv_lines(audit_rows(qs, until_sequence=until_sequence)))
        return
    if until_sequence is not None:
        qs = qs.filter(sequence__lte=until_sequence)
    read_as = {name: _READ_AS.get(name, name) for name in COLUMNS}
    cells = {f"{name}_cell": _neutralize_sql(read_as[name]) for name in _FREE_TEXT_NAMES}
    cells |= {"created_text": _created_text_sql(), "payload_text": Cast("payload", TextField())}
    select = qs.annotate(**cells).values_list(
        *(f"{name}_cell" if name in _FREE_TEXT_NAMES else read_as[name] for name in COLUMNS)
    )
    sql, params = select.query.sql_with_params()
    yield (",".join(COLUMNS) + "\n").encode()
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
        pending: list[bytes] = []
        size = 0
        for data in copy:
            pending.append(bytes(data))
            size += len(data)
            if size >= 64 * 1024:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)


def _neutralize_sql(field: str) -> Func:
    """The CSV cell of a text column: a leading quote added when it starts with ``= + - @`` or a quote."""
    return Func(
        F(field),
        template=(
            "CASE WHEN left(%(expressions)s, 1) IN ('=', '+', '-', '@', '''') "
            "THEN '''' || %(expressions)s ELSE %(expressions)s END"
        ),
        output_field=TextField(),
    )


def csv_lines(rows: Iterable[tuple], *, batch: int = 500) -> Iterator[str]:
    """A header, then one CSV line per row; text cells starting with ``= + - @`` (or a quote) get a leading quote.
    Lines are yielded a few hundred at a time so a streaming response sends sizeable chunks."""
    writer = csv.writer(_Echo(), lineterminator="\n")
    yield writer.writerow(COLUMNS)
    pending: list[str] = []
    for row in rows:
        pending.append(writer.writerow(_neutralized(row)))
        if len(pending) >= batch:
            yield "".join(pending)
            pending = []
    if pending:
        yield "".join(pending)
