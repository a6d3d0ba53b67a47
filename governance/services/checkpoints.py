"""Signed, timestamped checkpoints of the audit chain's head (docs/trusted-time.md).

A checkpoint is a statement naming the head's sequence and hash, signed by the bundle signing key (the caller
passes the signer: keys live in the exports app) and timestamped by a TSA. ``verify_audit_chain --checkpoints``
checks that each statement is well formed, that its signature verifies with the public key stored beside it,
that the row at that sequence still has that hash, and that the timestamp token, once granted, covers it. Rows
rewritten after a checkpoint then contradict a statement dated by a third party.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.db import transaction
from django.utils import timezone

from governance.choices import TimestampStatus, TimestampSubject
from governance.models import AuditChainHead, AuditCheckpoint, AuditEvent
from governance.services.timestamps import timestamp_for, timestamp_request, tsa_roots
from governance.tsa import TsaError, timestamp_verify
from textpolicy.utc import utc_iso

STATEMENT_TYPE = "dossier.audit-checkpoint/v1"


def checkpoint_statement(*, sequence: int, head_hash: str, created_at) -> bytes:
    statement = {"type": STATEMENT_TYPE, "sequence": sequence, "hash": head_hash, "created_at": utc_iso(created_at)}
    return (json.dumps(statement, sort_keys=True, separators=(",", ":")) + "\n").encode()


@transaction.atomic
def audit_checkpoint_create(*, key_id: str, public_key_pem: str, sign: Callable[[bytes], bytes]) -> AuditCheckpoint:
    """Sign the chain's current head; a timestamp over the statement is requested in the same transaction."""
    head = AuditChainHead.objects.filter(pk=1).first()
    sequence, head_hash = (head.last_sequence, head.last_hash) if head else (0, "0" * 64)
    created_at = timezone.now()
    statement = checkpoint_statement(sequence=sequence, head_hash=head_hash, created_at=created_at)
    checkpoint = AuditCheckpoint.objects.create(
        sequence=sequence,
        head_hash=head_hash,
        statement=statement,
        key_id=key_id,
        public_key_pem=public_key_pem,
        signature=sign(statement),
        created_at=created_at,
    )
    timestamp_request(
        subject_type=TimestampSubject.AUDIT_CHECKPOINT, subject_id=checkpoint.pk, data=statement, team_id=None
    )
    return checkpoint


@dataclass
class CheckpointReport:
    checked: int = 0
    timestamped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _signature_problem(checkpoint: AuditCheckpoint) -> str | None:
    try:
        key = load_pem_public_key(checkpoint.public_key_pem.encode())
    except ValueError:
        return "its public key cannot be read"
    if not isinstance(key, Ed25519PublicKey):
        return "its public key is not Ed25519"
    try:
        key.verify(bytes(checkpoint.signature), bytes(checkpoint.statement))
    except InvalidSignature:
        return "its signature does not verify"
    return None


def _statement_problem(checkpoint: AuditCheckpoint) -> str | None:
    expected = checkpoint_statement(
        sequence=checkpoint.sequence, head_hash=checkpoint.head_hash, created_at=checkpoint.created_at
    )
    if bytes(checkpoint.statement) != expected:
        return "its statement does not match its sequence, hash and time"
    if checkpoint.sequence == 0:
        return None
    stored = AuditEvent.objects.filter(sequence=checkpoint.sequence).values_list("hash", flat=True).first()
    if stored != checkpoint.head_hash:
        return f"the audit row at sequence {checkpoint.sequence} no longer has the hash it signed"
    return None


def _timestamp_problem(checkpoint: AuditCheckpoint) -> tuple[bool, str | None]:
    row = timestamp_for(TimestampSubject.AUDIT_CHECKPOINT, checkpoint.pk)
    if row is None or row.status != TimestampStatus.GRANTED or row.response is None:
        return False, None
    try:
        timestamp_verify(bytes(row.response), bytes(checkpoint.statement), roots=tsa_roots())
    except TsaError as exc:
        return True, f"its timestamp token does not verify: {exc.message}"
    return True, None


def audit_checkpoints_verify() -> CheckpointReport:
    report = CheckpointReport()
    for checkpoint in AuditCheckpoint.objects.order_by("sequence", "id").iterator(chunk_size=500):
        report.checked += 1
        timestamped, token_problem = _timestamp_problem(checkpoint)
        report.timestamped += timestamped
        for problem in (_statement_problem(checkpoint), _signature_problem(checkpoint), token_problem):
            if problem:
                report.problems.append(f"checkpoint {checkpoint.pk} (sequence {checkpoint.sequence}): {problem}")
    return report
