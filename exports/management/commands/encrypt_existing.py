"""encrypt_existing [--dry-run]: encrypt the objects stored before encryption at rest was turned on.

An object is encrypted only if its bytes still hash to its row's sha256, so every digest stays what it was.
Resumable: encrypted objects are skipped. Audited as ``encryption.existing_objects_encrypted``. Exit codes: 0 done,
1 error, 3 objects that could not be encrypted (docs/encryption.md).
"""

from config.commands import exclusive
from exports.management.commands._encryption import EncryptionCommand
from exports.services.encryption import existing_objects_encrypt


class Command(EncryptionCommand):
    help = "Encrypt objects stored in plaintext, keeping their digests. Exit 0 done, 1 error, 3 objects failed."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="list what would be encrypted; change nothing")

    def handle(self, *args, dry_run: bool = False, **options):
        with exclusive("encrypt_existing"):
            tally = existing_objects_encrypt(dry_run=dry_run, progress=self.progress)
        labels = {"done": "would encrypt" if dry_run else "encrypted", "skipped": "already encrypted"}
        self.summarize(tally, labels=labels, dry_run=dry_run)
