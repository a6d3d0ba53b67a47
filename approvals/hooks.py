"""How approvals plugs into the extension points of ``exports`` (see exports/hooks.py and settings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from approvals.selectors import ladders_for_exports
from approvals.services.ladders import ladder_instantiate
from exports.models import NarrativeExport


def export_created(export: NarrativeExport, actor) -> None:
    """DOSSIER_EXPORT_CREATED_HOOKS: build the ladder inside the export's creation transaction."""
    ladder_instantiate(export=export, actor=actor)


def export_representation(exports: Sequence[NarrativeExport]) -> dict[int, dict[str, Any]]:
    """DOSSIER_EXPORT_REPRESENTATION_HOOKS: ``{"ladder": {"status", "stages": [...]}}`` for a page of exports."""
    ladders = ladders_for_exports(export.pk for export in exports)
    empty = {"status": None, "iteration": None, "stages": []}
    return {export.pk: {"ladder": ladders.get(export.pk, empty)} for export in exports}
