"""The audit-chain checkpoint, signed with the active bundle signing key (docs/trusted-time.md)."""

from __future__ import annotations

from exports.bundle.keys import public_key_pem
from exports.services.signing_keys import signer_for, signing_key_active
from governance.models import AuditCheckpoint
from governance.services.checkpoints import audit_checkpoint_create


def audit_checkpoint_sign() -> AuditCheckpoint:
    signer = signer_for(signing_key_active())
    return audit_checkpoint_create(
        key_id=signer.key_id, public_key_pem=public_key_pem(signer.public_key), sign=signer.sign
    )
