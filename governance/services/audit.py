"""The tamper-evident audit trail: appends serialized behind one lock, each row chained to the previous."""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from django.db import connection, connections, models, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from config.db import before_commit, before_commit_available
from governance.models import AuditChainHead, AuditChainVerification, AuditEvent

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def normalize_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload as the database will return it, so the hash written is the hash re-computed later."""
    return json.loads(canonical_json(payload or {}))


# The payload rule (docs/audit-trail.md, "What a payload holds"): an audit row carries ids, codes, numbers, booleans,
# timestamps and digests, never text a person or a lab client wrote. That text lives in its own record (the
# execution's timeline, the signature, the escalation, the baseline or template log); the row carries its digest,
# so the row can stay intact for the whole retention period when the text is erased, and the chain keeps verifying.
#
# Values under these keys, at any depth, are text a person wrote: a string becomes ``{"sha256", "length"}``.
FREE_TEXT_KEYS = frozenset({
    "body", "comment", "comments", "contacted", "description", "detail", "filename", "label", "meaning", "message",
    "name", "note", "notes", "original_filename", "printed_name", "reason", "summary", "text", "title",
})  # fmt: skip
# Names a curator gave to a ladder's steps are the SOP's configuration, not a team's content: the row keeps them
# readable (the feed and auditors name the stage) as long as they are a single line of a name's length.
CONFIGURATION_NAME_KEYS = frozenset({"stage", "stage_name"})
_NOT_A_NAME = re.compile(r"[\x00-\x1f\x7f]")
# Values under these keys have whatever structure a client or a person gave them: the row keeps only their digest
# (of the canonical JSON) and, for an object, its top-level keys.
OPAQUE_KEYS = frozenset({"content", "data", "payload", "value", "values"})
# Any other string that is not code-shaped (has white space or control characters, or is longer than a code or an
# ISO timestamp would be) is treated as free text too, whatever its key.
MAX_CODE_LENGTH = 200
_NOT_A_CODE = re.compile(r"[\s\x00-\x1f\x7f]")


def text_digest(text: str) -> dict[str, Any]:
    """What an audit payload holds in place of ``text``: the sha256 hex of its UTF-8 bytes and its length."""
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "length": len(text)}


def _opaque_digest(value: Any) -> dict[str, Any]:
    digest: dict[str, Any] = {"sha256": hashlib.sha256(canonical_json(value).encode()).hexdigest()}
    if isinstance(value, dict):
        digest["keys"] = sorted(value)
    return digest


def _audit_string(key: str | None, value: str) -> Any:
    """A string as the row keeps it: a stage's name or a code as it is, anything else as its digest."""
    if key in CONFIGURATION_NAME_KEYS:
        name = len(value) <= MAX_CODE_LENGTH and _NOT_A_NAME.search(value) is None
        return value if name else text_digest(value)
    free = key in FREE_TEXT_KEYS or len(value) > MAX_CODE_LENGTH or _NOT_A_CODE.search(value) is not None
    return text_digest(value) if free else value


def _is_digest(value: Any) -> bool:
    return isinstance(value, dict) and set(value) in ({"sha256", "length"}, {"sha256"}, {"sha256", "keys"})


def _audit_value(key: str | None, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float) or _is_digest(value):
        return value
    if key in OPAQUE_KEYS:
        return _opaque_digest(value)
    if isinstance(value, str):
        return _audit_string(key, value)
    if isinstance(value, dict):
        return {k: _audit_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        if key in FREE_TEXT_KEYS:
            return _opaque_digest(value)
        return [_audit_value(None, item) for item in value]
    return value


def audit_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    """``payload`` as an audit row stores it: JSON-normalized, with every free text replaced by its digest.

    Applied by ``audit_record`` and ``audit_record_many`` to every row, so no caller can store text; callers keep the
    full text in their own records. Rows written before the rule are left as they are (their hashes cover them)."""
    return _audit_value(None, normalize_payload(payload))


@dataclass(frozen=True)
class AuditColumn:
    """One stored column of an audit row: its PostgreSQL type for the batched insert, whether the row's hash covers
    it, and whether a person or a client can influence its text (the auditors' CSV neutralizes those cells)."""

    name: str
    sql_type: str
    hashed: bool = True
    free_text: bool = False


# The one declaration of an audit row (docs/audit-trail.md, "How a row is hashed"): the hashed fields in the hash's
# order, then the row's own hash. Hashing, the insert, verification and the auditors' exports all read it.
AUDIT_COLUMNS = (
    AuditColumn("sequence", "bigint"),
    AuditColumn("created_at", "timestamptz"),
    AuditColumn("actor_id", "integer"),
    AuditColumn("actor_username", "text", free_text=True),
    AuditColumn("action", "text", free_text=True),
    AuditColumn("object_type", "text", free_text=True),
    AuditColumn("object_id", "text", free_text=True),
    AuditColumn("team_id", "bigint"),
    AuditColumn("payload", "jsonb"),
    AuditColumn("prev_hash", "text"),
    AuditColumn("hash", "text", hashed=False),
)
AUDIT_COLUMN_NAMES = tuple(column.name for column in AUDIT_COLUMNS)
HASHED_FIELDS = tuple(column.name for column in AUDIT_COLUMNS if column.hashed)
if AUDIT_COLUMN_NAMES[: len(HASHED_FIELDS)] != HASHED_FIELDS:  # pragma: no cover - a declaration error
    raise ImportError("the hashed audit fields must come first, in the hash's order")
# Positions in a stored row read in ``AUDIT_COLUMN_NAMES`` order.
_AT = {name: index for index, name in enumerate(AUDIT_COLUMN_NAMES)}
_CREATED, _PAYLOAD, _PREV, _HASH = _AT["created_at"], _AT["payload"], _AT["prev_hash"], _AT["hash"]


def audit_row_hash(**fields: Any) -> str:
    """sha256 hex of the canonical JSON array of a row's ``HASHED_FIELDS`` in their order (``prev_hash`` last), with
    ``created_at`` in the hash's UTC format. Other keyword arguments (the row's own ``hash``) are ignored."""
    values = [fields[name] for name in HASHED_FIELDS]
    values[_CREATED] = _timestamp(values[_CREATED])
    return _hash_fields(tuple(values))


def _hash_fields(fields: tuple) -> str:
    """``fields`` in ``HASHED_FIELDS`` order, with ``created_at`` already formatted by ``_timestamp``."""
    return hashlib.sha256(_CANONICAL.encode(fields).encode()).hexdigest()


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _object_ref(obj: models.Model | None) -> tuple[str, str]:
    if obj is None:
        return "", ""
    return obj._meta.label_lower, str(obj.pk)


@transaction.atomic(savepoint=False)  # appends only: no savepoint round trips
def audit_record(
    *,
    action: str,
    actor=None,
    obj: models.Model | None = None,
    team_id: int | None = None,
    payload: dict[str, Any] | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
) -> AuditEvent:
    """Append one row to the audit chain in the caller's transaction.

    The row is chained just before the transaction commits (``config.db.before_commit``): the chain head is then
    the last row the transaction locks, held only for the commit, so concurrent writers append one after the other,
    sequence order is commit order, and no lock order can deadlock on the head (docs/architecture.md, "Lock
    order"). Until then the returned row has its content but not its ``sequence``, ``hash`` or ``pk``. Where the
    transaction cannot commit through ``config.db`` (SQLite, a ``TestCase`` block) the row is chained at once.
    """
    draft = _Draft.of(action, actor, obj, team_id, payload, object_type=object_type, object_id=object_id)
    (row,) = _queue_or_append([draft])
    return row


def _queue_or_append(drafts: list[_Draft], *, batch_size: int = 5000) -> list[AuditEvent]:
    rows = [AuditEvent(**draft.__dict__) for draft in drafts]
    if before_commit_available():
        before_commit(_append_queued, rows)
    else:
        _append(rows, batch_size=batch_size)
    return rows


def _append_queued(batches: list[list[AuditEvent]]) -> None:
    """Every row the committing transaction queued, in order, under one head lock taken last.

    PostgreSQL checks Django's foreign keys (``DEFERRABLE INITIALLY DEFERRED``) at COMMIT, each check locking the
    row it references (``FOR KEY SHARE``): left there, those locks would come after the head. So the pending checks
    are run first, then the teams and users the audit rows reference are locked, and only then the head."""
    rows = [row for rows in batches for row in rows]
    statements = ["SET CONSTRAINTS ALL IMMEDIATE"]
    for name in ("team", "actor"):
        ids = sorted({int(value) for row in rows if (value := getattr(row, f"{name}_id")) is not None})
        if ids:
            model = cast("type[models.Model]", AuditEvent._meta.get_field(name).related_model)
            table = connection.ops.quote_name(model._meta.db_table)
            listed = ",".join(str(pk) for pk in ids)  # integers read from the rows: nothing to quote
            statements.append(f"SELECT 1 FROM {table} WHERE id IN ({listed}) ORDER BY id FOR KEY SHARE")  # noqa: S608
    with connection.cursor() as cursor:  # no parameters: one round trip for every statement
        cursor.execute("; ".join(statements))
    _append(rows)


@dataclass(frozen=True)
class _Draft:
    """A row's content, prepared before the head is locked; the chain fields are filled in under the lock."""

    actor_id: int | None
    actor_username: str
    action: str
    object_type: str
    object_id: str
    team_id: int | None
    payload: dict[str, Any]

    @classmethod
    def of(
        cls,
        action: str,
        actor,
        obj: models.Model | None,
        team_id: int | None,
        payload: dict[str, Any] | None,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
    ) -> _Draft:
        ref_type, ref_id = _object_ref(obj)
        return cls(
            actor_id=getattr(actor, "pk", None),
            actor_username=getattr(actor, "username", "") or "",
            action=action,
            object_type=object_type if object_type is not None else ref_type,
            object_id=object_id if object_id is not None else ref_id,
            team_id=team_id,
            payload=audit_payload(payload),
        )


# Appends of at most this many rows (every request's commit) are chained by the database in one statement.
ONE_STATEMENT_ROWS = 64


def _append(rows: list[AuditEvent], *, batch_size: int = 5000) -> None:
    """Lock the head, chain ``rows`` (their content set, their chain fields not yet) onto it and write them.
    Everything that does not depend on the head is done by the callers before: every writer in the system queues
    on this lock, so it is held only for the chaining, the writes and the commit."""
    if connection.vendor == "postgresql" and len(rows) <= ONE_STATEMENT_ROWS and _append_in_one_statement(rows):
        return
    head = _locked_head()
    sequence, prev_hash = head.last_sequence, head.last_hash
    now = timezone.now()
    for row in rows:
        sequence += 1
        row.sequence, row.created_at, row.prev_hash = sequence, now, prev_hash
        prev_hash = row.hash = audit_row_hash(**{name: getattr(row, name) for name in HASHED_FIELDS})
    if connection.vendor == "postgresql":
        _write_postgresql(rows, head.pk, batch_size)
    else:
        AuditEvent.objects.bulk_create(rows, batch_size=batch_size)
        AuditChainHead.objects.filter(pk=head.pk).update(last_sequence=sequence, last_hash=prev_hash)


def _append_in_one_statement(rows: list[AuditEvent]) -> bool:
    """Chain ``rows`` on PostgreSQL in a single statement: lock the head, hash each row onto the previous one, insert
    the rows and advance the head, so the head is held for one round trip and the commit, never while this thread
    waits for the CPU between statements. Each row's canonical JSON is prepared here, before the lock, but for the
    two values only the head gives (``sequence`` first, ``prev_hash`` last); the database splices them in and hashes
    the UTF-8 bytes with its ``sha256``, which is byte for byte what ``audit_row_hash`` computes (a test holds both
    to it). False, with nothing written, when the head row does not exist yet."""
    now = timezone.now()
    created = _timestamp(now)
    inner = []
    for row in rows:
        row.created_at = now
        values = [getattr(row, name) for name in HASHED_FIELDS[1:-1]]
        values[_CREATED - 1] = created
        inner.append(_CANONICAL.encode(values)[1:-1])  # between "[sequence," and ',"prev_hash"]'
    columns = [
        [Jsonb(row.payload) for row in rows] if name == "payload" else [getattr(row, name) for row in rows]
        for name in _CONTENT_COLUMNS
    ]
    with connection.cursor() as cursor:
        cursor.execute(_chain_statement(), [inner, *columns])
        chained = sorted(cursor.fetchall(), key=lambda chained_row: chained_row[1])
    if not chained:
        return False
    for row, (pk, sequence, prev_hash, row_hash) in zip(rows, chained, strict=True):
        row.pk, row.sequence, row.prev_hash, row.hash = pk, sequence, prev_hash, row_hash
    return True


# The columns a row brings to the statement; ``sequence``, ``prev_hash`` and ``hash`` come from the chain.
_CONTENT_COLUMNS = tuple(name for name in AUDIT_COLUMN_NAMES if name not in {"sequence", "prev_hash", "hash"})


@functools.cache
def _chain_statement() -> str:
    quote = connection.ops.quote_name
    types = {column.name: column.sql_type for column in AUDIT_COLUMNS}
    head, events = quote(AuditChainHead._meta.db_table), quote(AuditEvent._meta.db_table)
    arrays = ", ".join(["%s::text[]", *(f"%s::{types[name]}[]" for name in _CONTENT_COLUMNS)])
    content = ", ".join(quote(name) for name in _CONTENT_COLUMNS)
    selected = ", ".join(f"i.{quote(name)}" for name in _CONTENT_COLUMNS)
    statement = (
        f"WITH RECURSIVE head AS (SELECT last_sequence, last_hash FROM {head} WHERE id = 1 FOR UPDATE), "  # noqa: S608
        f"input AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS i(inner_json, {content}, n)), "
        "chain(n, sequence, hash, prev_hash) AS ("
        "SELECT 0::bigint, last_sequence, last_hash::text, NULL::text FROM head "
        "UNION ALL SELECT i.n, c.sequence + 1, encode(sha256(convert_to("
        "'[' || (c.sequence + 1)::text || ',' || i.inner_json || ',\"' || c.hash || '\"]', 'UTF8')), 'hex'), c.hash "
        "FROM chain c JOIN input i ON i.n = c.n + 1), "
        f"appended AS (INSERT INTO {events} ({quote('sequence')}, {content}, {quote('prev_hash')}, {quote('hash')}) "
        f"SELECT c.sequence, {selected}, c.prev_hash, c.hash FROM chain c JOIN input i ON i.n = c.n "
        "RETURNING id, sequence, prev_hash, hash), "
        f"advanced AS (UPDATE {head} AS h SET last_sequence = c.sequence, last_hash = c.hash "
        "FROM (SELECT sequence, hash FROM chain ORDER BY n DESC LIMIT 1) AS c WHERE h.id = 1) "
        "SELECT id, sequence, prev_hash, hash FROM appended"
    )
    return statement  # declared names only: every value is a parameter


def _locked_head() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        AuditChainHead.objects.get_or_create(pk=1)
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


def _write_postgresql(rows: list[AuditEvent], head_id: int, batch_size: int) -> None:
    """The rows as column arrays through ``unnest``, the last batch and the head update in one statement: one
    round trip under the lock. Like ``bulk_create``, it sets the primary keys of ``rows``."""
    quote = connection.ops.quote_name
    names = ", ".join(quote(column.name) for column in AUDIT_COLUMNS)
    arrays = ", ".join(f"%s::{column.sql_type}[]" for column in AUDIT_COLUMNS)
    insert = (
        f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({names}) "  # noqa: S608 - declared names, no input
        f"SELECT * FROM unnest({arrays}) RETURNING id, sequence"
    )
    advance = f"UPDATE {quote(AuditChainHead._meta.db_table)} SET last_sequence = %s, last_hash = %s WHERE id = %s"  # noqa: S608
    append_and_advance = f"WITH appended AS ({insert}), advanced AS ({advance}) SELECT id, sequence FROM appended"  # noqa: S608
    by_sequence = {row.sequence: row for row in rows}
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            columns = [
                [Jsonb(row.payload) for row in batch] if name == "payload" else [getattr(row, name) for row in batch]
                for name in AUDIT_COLUMN_NAMES
            ]
            if start + batch_size < len(rows):
                cursor.execute(insert, columns)
            else:  # a data-modifying WITH runs to completion whatever the outer statement reads
                last = rows[-1]
                cursor.execute(append_and_advance, [*columns, last.sequence, last.hash, head_id])
            for pk, sequence in cursor.fetchall():
                by_sequence[sequence].pk = pk


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    broken_sequence: int | None = None
    reason: str = ""


def _stored_rows(chunk_size: int, first: int = 1, last: int | None = None) -> Iterator[tuple]:
    """Rows in chain order, streamed through a server-side cursor where the database has one.

    On PostgreSQL the timestamp is formatted by the database in the hash's own format, which spares parsing and
    re-formatting one datetime per row.
    """
    columns = list(AUDIT_COLUMN_NAMES)
    postgres = connection.vendor == "postgresql"
    if postgres:
        columns[_CREATED] = f"to_char(created_at AT TIME ZONE 'UTC', '{_PG_TIMESTAMP_FORMAT}')"
    created_field = AuditEvent._meta.get_field("created_at")
    table = AuditEvent._meta.db_table
    converters = [] if postgres else connection.ops.get_db_converters(created_field.get_col(table))
    with connection.chunked_cursor() as cursor:
        bounds, params = "sequence >= %s", [first]
        if last is not None:
            bounds, params = "sequence BETWEEN %s AND %s", [first, last]
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE {bounds} ORDER BY sequence",  # noqa: S608 - fixed names
            params,
        )
        while batch := cursor.fetchmany(chunk_size):
            if postgres:
                # Timestamps already formatted; payloads arrive as JSON text.
                loads = json.loads
                yield from ((*row[:_PAYLOAD], loads(row[_PAYLOAD]), *row[_PAYLOAD + 1 :]) for row in batch)
                continue
            for stored in batch:
                row = list(stored)
                for converter in converters:
                    row[_CREATED] = converter(row[_CREATED], created_field, connection)
                row[_CREATED] = _timestamp(row[_CREATED])
                if isinstance(row[_PAYLOAD], str | bytes):
                    row[_PAYLOAD] = json.loads(row[_PAYLOAD])
                yield tuple(row)


_PG_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def audit_chain_check(
    rows: Iterable[tuple], *, first: int = 1, expected_prev: str = GENESIS_HASH, check_head: bool = True
) -> ChainReport:
    """Walk rows in sequence order from ``first``; report the first whose link or content does not hold."""
    expected_sequence = first
    count = 0
    encode, sha256 = _CANONICAL.encode, hashlib.sha256
    hashed = len(HASHED_FIELDS)
    for row in rows:
        count += 1
        sequence, stored_hash, prev_hash = row[0], row[_HASH], row[_PREV]
        if sequence != expected_sequence:
            return ChainReport(False, count, sequence, f"sequence gap: expected {expected_sequence}, found {sequence}")
        if prev_hash != expected_prev:
            return ChainReport(False, count, sequence, "prev_hash does not match the previous row's hash")
        if sha256(encode(row[:hashed]).encode()).hexdigest() != stored_hash:
            return ChainReport(False, count, sequence, "row content does not match its hash")
        expected_prev = stored_hash
        expected_sequence += 1
    return _head_check(count) if check_head else ChainReport(True, count)


def _head_check(count: int) -> ChainReport:
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_sequence != count:
        return ChainReport(
            False, count, count + 1, f"chain ends at {count} but its head records {head.last_sequence} rows"
        )
    return ChainReport(True, count)


# Below this many rows a second process costs more than it saves.
PARALLEL_MIN_ROWS = 20_000


def _verify_range(bounds: tuple[int, int, str, int]) -> ChainReport:
    first, last, expected_prev, chunk_size = bounds
    try:
        rows = _stored_rows(chunk_size, first, last)
        return audit_chain_check(rows, first=first, expected_prev=expected_prev, check_head=False)
    finally:
        connection.close()


def _parallel_check(workers: int, chunk_size: int) -> ChainReport | None:
    """Verify contiguous sequence ranges in ``workers`` processes; None when that is not possible here.

    Each range starts from the stored hash of the row before it; that row's own hash is checked by the range
    that holds it, so the first broken row is still found and named.
    """
    if workers < 2 or connection.vendor != "postgresql" or multiprocessing.current_process().daemon:
        return None
    last = AuditEvent.objects.aggregate(last=models.Max("sequence"))["last"] or 0
    if last < PARALLEL_MIN_ROWS:
        return None
    step = -(-last // workers)
    starts = list(range(1, last + 1, step))
    previous = dict(
        AuditEvent.objects.filter(sequence__in=[start - 1 for start in starts[1:]]).values_list("sequence", "hash")
    )
    ranges = [
        (start, min(start + step - 1, last), previous.get(start - 1, GENESIS_HASH) if start > 1 else GENESIS_HASH,
         chunk_size)
        for start in starts
    ]  # fmt: skip
    connections.close_all()  # the children open their own connections
    with ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("fork")) as pool:
        partials = list(pool.map(_verify_range, ranges))
    counted = 0
    for part in partials:
        counted += part.rows
        if not part.ok:
            return ChainReport(False, counted, part.broken_sequence, part.reason)
    return _head_check(counted)


def audit_chain_verify(*, record: bool = True, chunk_size: int = 5000, workers: int = 1) -> ChainReport:
    """Verify the whole chain; ``workers`` > 1 splits it across processes on PostgreSQL (not inside daemons)."""
    started = time.monotonic()
    report = _parallel_check(workers, chunk_size) or audit_chain_check(_stored_rows(chunk_size))
    if record:
        AuditChainVerification.objects.create(
            checked_at=timezone.now(),
            rows=report.rows,
            ok=report.ok,
            broken_sequence=report.broken_sequence,
            reason=report.reason[:300],
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    return report


@dataclass(frozen=True)
class AuditEntry:
    action: str
    actor: Any = None
    obj: models.Model | None = None
    team_id: int | None = None
    payload: dict[str, Any] | None = None


@transaction.atomic(savepoint=False)
def audit_record_many(entries: Iterable[AuditEntry], *, batch_size: int = 5000) -> list[AuditEvent]:
    """Append many rows to the chain under one head lock and a bounded number of statements (batch jobs); chained
    just before the commit, as ``audit_record`` rows are."""
    drafts = [_Draft.of(entry.action, entry.actor, entry.obj, entry.team_id, entry.payload) for entry in entries]
    return _queue_or_append(drafts, batch_size=batch_size) if drafts else []
