"""Extension points of governance that higher apps fill through settings (dependencies point one way).

- ``DOSSIER_EXECUTION_RESOLVER``: dotted path of ``resolver(*, user, execution_id) -> ExecutionReference | None``:
  the execution a baseline is proposed from, as ``user`` may see it (None outside the user's teams). Executions
  belong to the exports app; governance keeps only their id (docs/architecture.md, "Where baselines live").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class ExecutionReference:
    """What governance needs to know about an execution: its id, its team and its protocol template."""

    id: int
    team_id: int
    protocol_template_key: str


@cache
def execution_resolver() -> Callable[..., ExecutionReference | None]:
    path = getattr(settings, "DOSSIER_EXECUTION_RESOLVER", "")
    if not path:
        raise ImproperlyConfigured("DOSSIER_EXECUTION_RESOLVER names no resolver: baselines cannot be proposed.")
    return import_string(path)


@receiver(setting_changed)
def _reload_hooks(*, setting: str, **kwargs) -> None:
    if setting == "DOSSIER_EXECUTION_RESOLVER":
        execution_resolver.cache_clear()
