"""Work that must run at the very end of a transaction, just before its COMMIT (docs/architecture.md, "Lock order").

``config.db`` is the project's database engine: Django's PostgreSQL backend whose ``commit()`` first runs what was
registered with :func:`before_commit` in the transaction being committed, in the same transaction. The audit trail
appends through it, so the audit-chain head, the one row every writer locks, is always the last lock a
transaction takes and held only for the commit: no deadlock can form around it.

Registrations ride on Django's ``on_commit`` list (as callbacks that do nothing after the commit), so they share
its bookkeeping: a rolled-back savepoint or transaction drops them with the work it undoes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction


@dataclass(eq=False)
class BeforeCommit:
    """One item for ``flush``; every item of a transaction with the same ``flush`` goes to one call, in order."""

    flush: Callable[[list[Any]], None]
    item: Any

    def __call__(self) -> None:  # after the commit there is nothing left to do
        return None


def before_commit_available(using: str | None = None) -> bool:
    """Whether :func:`before_commit` work will run on this connection: the engine is ``config.db`` and the
    transaction can commit (a block opened by Django's ``TestCase`` is rolled back, never committed)."""
    connection = transaction.get_connection(using)
    if not getattr(connection, "runs_before_commit", False) or not connection.in_atomic_block:
        return False
    return not any(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def before_commit(flush: Callable[[list[Any]], None], item: Any, using: str | None = None) -> None:
    """Run ``flush([item, …])`` just before the current transaction commits (check :func:`before_commit_available`
    first)."""
    transaction.on_commit(BeforeCommit(flush, item), using=using)


def before_commit_run(connection) -> None:
    """Called by the engine's ``commit()``: each ``flush`` once, with its items in registration order."""
    groups: dict[Callable[[list[Any]], None], list[Any]] = {}
    for _sids, func, _robust in connection.run_on_commit:
        if isinstance(func, BeforeCommit):
            groups.setdefault(func.flush, []).append(func.item)
    for flush, items in groups.items():
        flush(items)
