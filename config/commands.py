"""The shared base for management commands: one-line errors and documented exit codes."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError

from config.errors import DossierError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_PERMITTED = 2
EXIT_INVALID = 3


class DossierCommand(BaseCommand):
    """Turns application errors into a one-line reason on stderr and exit code 1 instead of a traceback."""

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except DossierError as exc:
            self.stderr.write(f"error: {exc.message}")
            sys.exit(EXIT_ERROR)
        except CommandError as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(exc.returncode or EXIT_ERROR)


@contextmanager
def exclusive(name: str, timeout: int = 3600):
    """Refuse to run a cron-like command while another run of it holds the lock."""
    key = f"command-lock:{name}"
    if not cache.add(key, "1", timeout):
        raise CommandError(f"another '{name}' run is in progress", returncode=EXIT_ERROR)
    try:
        yield
    finally:
        cache.delete(key)
