"""rewrap_data_keys [--dry-run]: re-wrap every stored object's data key under the active key-encryption key.

Only each object's header is rewritten; its chunks are copied as they are. Resumable: objects already under the
active key are skipped. Audited as ``encryption.data_keys_rewrapped``. Exit codes: 0 done, 1 error, 3 objects
that fail to open (docs/encryption.md).
"""

from config.commands import exclusive
from exports.management.commands._encryption import EncryptionCommand
from exports.services.encryption import data_keys_rewrap


class Command(EncryptionCommand):
    help = "Re-wrap data keys under the active key-encryption key. Exit 0 done, 1 error, 3 objects fail to open."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="check every object would re-wrap; change nothing")

    def handle(self, *args, dry_run: bool = False, **options):
        with exclusive("rewrap_data_keys"):
            tally = data_keys_rewrap(dry_run=dry_run, progress=self.progress)
        labels = {"done": "would re-wrap" if dry_run else "re-wrapped", "skipped": "already under the active key"}
        self.summarize(tally, labels=labels, dry_run=dry_run)
