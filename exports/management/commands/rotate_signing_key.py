from config.commands import DossierCommand
from exports.services.signing_keys import signing_key_rotate


class Command(DossierCommand):
    help = "Retire the active bundle signing key and create a new one; past public keys stay published."

    def handle(self, *args, **options):
        key = signing_key_rotate()
        self.stdout.write(f"active signing key: {key.key_id} ({key.algorithm})")
