"""What the encryption commands share: keyring errors as one-line failures, progress on a terminal, a summary,
and the exit codes of docs/encryption.md (0 done, 1 error, 3 objects that fail to open)."""

from __future__ import annotations

import sys

from django.core.management.base import CommandError

from config.commands import EXIT_ERROR, EXIT_INVALID, DossierCommand
from exports.crypto import CryptoError
from exports.services.encryption import FAILED, MISSING, StoredObject, Tally
from exports.storage import StorageUnavailable

ORDER = ("done", "skipped", "plaintext", FAILED, MISSING)


class EncryptionCommand(DossierCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except (CryptoError, StorageUnavailable) as exc:
            self.stderr.write(f"error: {getattr(exc, 'message', None) or exc}")
            sys.exit(EXIT_ERROR)

    def progress(self, index: int, total: int, obj: StoredObject, outcome: str) -> None:
        if self.stderr.isatty():
            self.stderr.write(f"\r{index}/{total} {obj.kind} {obj.pk}: {outcome}", ending="")
            if index == total:
                self.stderr.write("")

    def summarize(self, tally: Tally, *, labels: dict[str, str], dry_run: bool = False) -> None:
        for obj, reason in tally.failures:
            self.stdout.write(f"  {obj.kind} {obj.pk} ({obj.name}): {reason}")
        parts = [f"{labels.get(outcome, outcome)} {tally[outcome]}" for outcome in ORDER if tally[outcome]]
        prefix = "dry run, nothing changed: " if dry_run else ""
        self.stdout.write(f"{prefix}{tally.total} object(s): " + (", ".join(parts) or "none"))
        if tally[FAILED] or tally[MISSING]:
            raise CommandError(f"{tally[FAILED] + tally[MISSING]} object(s) do not open", returncode=EXIT_INVALID)
