"""The project's own Python modules, parsed once, for tests that check rules over the whole code base."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("analytics", "approvals", "config", "exports", "governance", "textpolicy")


def app_modules() -> list[Path]:
    """Every module of the apps, migrations excluded (they are history, not code that runs the product)."""
    return sorted(
        path for app in APPS for path in (ROOT / app).rglob("*.py") if "migrations" not in path.relative_to(ROOT).parts
    )


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()
