from config.commands import DossierCommand
from exports.services.checkpoints import audit_checkpoint_sign
from governance.services.timestamps import timestamps_enabled


class Command(DossierCommand):
    help = (
        "Sign the audit chain's head with the bundle signing key and request a trusted timestamp over it "
        "(docs/trusted-time.md). Exit 0 done, 1 error."
    )

    def handle(self, *args, **options):
        checkpoint = audit_checkpoint_sign()
        timestamp = "requested" if timestamps_enabled() else "off (DOSSIER_TSA_URLS is empty)"
        self.stdout.write(
            f"checkpoint {checkpoint.pk}: sequence {checkpoint.sequence}, hash {checkpoint.head_hash}, "
            f"key {checkpoint.key_id}; trusted timestamp {timestamp}"
        )
