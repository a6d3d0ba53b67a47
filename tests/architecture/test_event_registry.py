"""Event types are spelled once, in ``exports/events.py``; every writer and reader imports them from there."""

from __future__ import annotations

import ast

from exports.events import EventType
from tests.architecture.sources import app_modules, parsed, relative

REGISTRY = "exports/events.py"
# Settings are configuration, read before the apps load: they may name an event type as plain data.
CONFIGURATION = {"config/settings.py"}


def test_every_event_type_is_namespaced_and_unique():
    values = [member.value for member in EventType]
    assert len(values) == len(set(values))
    assert all(value.split(".")[0] in {"narrative_export", "execution", "governance"} for value in values)


def test_event_type_strings_appear_only_in_the_registry():
    known = set(EventType.values)
    spelled = []
    for path in app_modules():
        name = relative(path)
        if name == REGISTRY or name in CONFIGURATION:
            continue
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Constant) and node.value in known:
                spelled.append(f"{name}:{node.lineno} {node.value}")
    assert spelled == [], "import the name from exports.events instead of spelling it"


def test_the_scan_sees_a_spelled_event_type():
    tree = ast.parse('event_type = "narrative_export.packaging.queued"')
    assert any(isinstance(node, ast.Constant) and node.value in set(EventType.values) for node in ast.walk(tree))
