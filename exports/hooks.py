"""Extension points that higher apps plug into through settings (dependencies point one way).

- ``DOSSIER_PACKAGING_GATES``: dotted paths of ``gate(export) -> GateResult``. The packaging worker asks every
  gate, under the export's row lock, before it builds anything. With no gate configured packaging is refused:
  an export never ships merely because nobody was asked.
- ``DOSSIER_EXPORT_CREATED_HOOKS``: ``hook(export, actor)`` called inside the creation transaction (approvals
  instantiates the ladder here).
- ``DOSSIER_EXPORT_REPRESENTATION_HOOKS``: ``hook(exports: list) -> dict[export_id, dict]`` returning extra
  fields for the API representation of a page of exports (approvals adds ``ladder``), batched so that list
  endpoints keep a fixed query count.
- ``DOSSIER_APPROVAL_RECORD_PROVIDER``: ``provider(export) -> ApprovalRecord``: the signatures appended to the
  packaged ``narrative.md`` and the ``approvals.json`` document of the bundle (approvals supplies both). Unset,
  the bundle carries an empty approval record.
- ``DOSSIER_TEAM_DATA_SECTIONS``: ``provider() -> Iterable[exports.selectors.team_data.TeamDataSection]``: further
  kinds of a team's records for its data export and erasure report (approvals adds ladders, stages, signatures,
  approval history and escalations; docs/team-data.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class GateResult:
    allowed: bool
    gate: str
    reason: str = ""
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalRecord:
    """What packaging appends to the narrative: ``signatures`` are ``exports.narratives.Signature`` values
    (each binding the export's narrative_digest), ``document`` is written as ``data/approvals.json``."""

    signatures: tuple = ()
    document: dict[str, Any] = field(default_factory=dict)


def _load(setting: str) -> tuple[Callable, ...]:
    return tuple(import_string(path) for path in getattr(settings, setting, ()))


@cache
def packaging_gates() -> tuple[Callable, ...]:
    return _load("DOSSIER_PACKAGING_GATES")


@cache
def export_created_hooks() -> tuple[Callable, ...]:
    return _load("DOSSIER_EXPORT_CREATED_HOOKS")


@cache
def export_representation_hooks() -> tuple[Callable, ...]:
    return _load("DOSSIER_EXPORT_REPRESENTATION_HOOKS")


@cache
def team_data_section_providers() -> tuple[Callable, ...]:
    return _load("DOSSIER_TEAM_DATA_SECTIONS")


@cache
def approval_record_provider() -> Callable | None:
    path = getattr(settings, "DOSSIER_APPROVAL_RECORD_PROVIDER", "")
    return import_string(path) if path else None


@receiver(setting_changed)
def _reload_hooks(*, setting: str, **kwargs) -> None:
    if setting.startswith("DOSSIER_"):
        packaging_gates.cache_clear()
        export_created_hooks.cache_clear()
        export_representation_hooks.cache_clear()
        approval_record_provider.cache_clear()
        team_data_section_providers.cache_clear()
