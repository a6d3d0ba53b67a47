"""The apps' one-way dependencies hold in the database too: no migration of a lower app depends on a migration of
a higher one, so the migration graph has no cycle between apps (docs/architecture.md)."""

import re
from pathlib import Path

from django.db.migrations.loader import MigrationLoader

LAYERS = ("governance", "exports", "approvals", "analytics")


def test_no_app_migration_depends_on_a_higher_app():
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    upward = sorted(
        (child, parent)
        for child, node in graph.node_map.items()
        if child[0] in LAYERS
        for parent in (p.key for p in node.parents)
        if parent[0] in LAYERS and LAYERS.index(parent[0]) > LAYERS.index(child[0])
    )
    assert upward == [], f"migrations of a lower app depending on a higher app's: {upward}"


def test_the_apps_migration_dependencies_have_no_cycle():
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    depends_on: dict[str, set[str]] = {}
    for child, node in graph.node_map.items():
        for parent in node.parents:
            if parent.key[0] != child[0]:
                depends_on.setdefault(child[0], set()).add(parent.key[0])

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(
            app == goal or (app not in seen and reaches(app, goal, seen | {app})) for app in depends_on.get(start, ())
        )

    cyclic = sorted(app for app in depends_on if reaches(app, app))
    assert cyclic == [], f"apps whose migrations depend on themselves through another app: {cyclic}"


ROOT = Path(__file__).resolve().parent.parent
CODE = ("config", "textpolicy", "governance", "exports", "approvals", "analytics", "scripts", "benchmarks", "tests")


def _python_files() -> list[Path]:
    return [path for folder in CODE for path in sorted((ROOT / folder).rglob("*.py"))]


def test_code_cites_the_repositorys_docs_not_an_outside_specification():
    outside = sorted(
        f"{path.relative_to(ROOT)}:{number}"
        for path in _python_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"\bSPEC\s*§", line)
    )
    assert outside == [], f"cite docs/<file>.md instead: {outside}"


def test_every_doc_the_code_cites_exists():
    cited = {
        match
        for path in _python_files()
        for match in re.findall(r"docs/([\w.-]+\.(?:md|py))", path.read_text(encoding="utf-8"))
    }
    assert cited, "the code cites its docs"
    missing = sorted(name for name in cited if not (ROOT / "docs" / name).exists())
    assert missing == [], f"cited but not in docs/: {missing}"
