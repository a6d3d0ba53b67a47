"""The ``config.db`` engine: PostgreSQL, running the transaction's ``before_commit`` work before each COMMIT."""

from __future__ import annotations

from contextlib import suppress

from django.db import Error
from django.db.backends.postgresql import base

from config.db import before_commit_run


class DatabaseWrapper(base.DatabaseWrapper):
    runs_before_commit = True

    def commit(self) -> None:
        if self.run_on_commit:
            try:
                before_commit_run(self)
            except BaseException:
                with suppress(Error):  # nothing of the transaction may commit; the caller sees the first error
                    self.rollback()
                raise
        super().commit()
