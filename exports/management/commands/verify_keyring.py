"""verify_keyring [--keyring JSON-OR-PATH]: prove that a keyring opens every stored object.

Each object is decrypted completely and its plaintext checked against its row's sha256. Use it on a keyring
restored from backup before relying on it. Exit codes: 0 every object opens, 1 error, 3 objects that fail to open
(docs/encryption.md).
"""

from exports.crypto import keyring_load
from exports.management.commands._encryption import EncryptionCommand
from exports.services.encryption import keyring_verify


class Command(EncryptionCommand):
    help = "Open every stored object with a keyring. Exit 0 all open, 1 error, 3 objects fail to open."

    def add_arguments(self, parser):
        parser.add_argument("--keyring", help="the keyring JSON or a path to it (default: the one in use)")

    def handle(self, *args, keyring: str | None = None, **options):
        tally = keyring_verify(keyring=keyring_load(keyring) if keyring else None, progress=self.progress)
        self.summarize(tally, labels={"done": "open", "plaintext": "not encrypted (see encrypt_existing)"})
