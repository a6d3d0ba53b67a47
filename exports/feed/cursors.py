"""Where the feed keeps its cursor: ``{"cursor","rows","updatedAt"}`` in a file, or a ``FeedCursor`` row."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from django.utils import timezone

from config.errors import ValidationFailed
from governance.models import FeedCursor

DEFAULT_CURSOR_NAME = "governance-feed"


@dataclass(frozen=True)
class CursorState:
    cursor: int = 0
    rows: int = 0
    updated_at: datetime | None = None

    def as_json(self) -> dict:
        updated = self.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if self.updated_at else None
        return {"cursor": self.cursor, "rows": self.rows, "updatedAt": updated}


class CursorStore(Protocol):
    name: str

    def load(self) -> CursorState: ...

    def save(self, *, cursor: int, rows: int) -> CursorState: ...


class FileCursorStore:
    """A JSON file replaced atomically (write aside, fsync, rename), so a crash leaves the old or the new cursor."""

    name = "file"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> CursorState:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return CursorState()
        except (OSError, ValueError) as exc:
            raise ValidationFailed(f"the cursor file {self.path} is not readable JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ValidationFailed(f"the cursor file {self.path} does not hold a JSON object")
        cursor, rows = document.get("cursor"), document.get("rows")
        if not isinstance(cursor, int) or not isinstance(rows, int) or cursor < 0 or rows < 0:
            raise ValidationFailed(f"the cursor file {self.path} does not hold a cursor and a row count")
        updated = document.get("updatedAt")
        return CursorState(cursor, rows, datetime.fromisoformat(updated) if updated else None)

    def save(self, *, cursor: int, rows: int) -> CursorState:
        state = CursorState(cursor, rows, timezone.now())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_name(f".{self.path.name}.tmp")
        with aside.open("w") as handle:
            json.dump(state.as_json(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return state


class DbCursorStore:
    """One ``FeedCursor`` row per consumer name; the scheduled feed uses ``governance-feed``."""

    name = "db"

    def __init__(self, cursor_name: str = DEFAULT_CURSOR_NAME) -> None:
        self.cursor_name = cursor_name

    def load(self) -> CursorState:
        row, _ = FeedCursor.objects.get_or_create(name=self.cursor_name)
        return CursorState(row.cursor, row.rows, row.updated_at)

    def save(self, *, cursor: int, rows: int) -> CursorState:
        now = timezone.now()
        FeedCursor.objects.update_or_create(
            name=self.cursor_name, defaults={"cursor": cursor, "rows": rows, "updated_at": now}
        )
        return CursorState(cursor, rows, now)
