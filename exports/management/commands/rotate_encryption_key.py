"""rotate_encryption_key [--keyring-file PATH]: add a new key-encryption key to the keyring and make it active.

Old keys stay in the keyring, so every object still opens; ``rewrap_data_keys`` then moves the objects to the new
key. Audited as ``encryption.key_rotated``. Exit codes: 0 done, 1 error (docs/encryption.md).
"""

from exports.management.commands._encryption import EncryptionCommand
from exports.services.encryption import keyring_rotate


class Command(EncryptionCommand):
    help = "Add a new key-encryption key to the keyring file and make it active. Exit 0 done, 1 error."

    def add_arguments(self, parser):
        parser.add_argument(
            "--keyring-file", help="the keyring file to rotate (default: the one DOSSIER_KEYRING names)"
        )

    def handle(self, *args, keyring_file: str | None = None, **options):
        key_id = keyring_rotate(path=keyring_file)
        self.stdout.write(f"active key-encryption key: {key_id}; run rewrap_data_keys to move objects to it")
