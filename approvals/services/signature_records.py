"""The signature record: the exact bytes a trusted timestamp covers for one electronic signature
(docs/trusted-time.md).

Only what never changes after signing goes in (a later reset marks a signature superseded, which the approval
record in ``approvals.json`` shows, but the record signed at the time stays byte-identical), as canonical JSON:
sorted keys, no insignificant whitespace, UTF-8, one trailing newline.
"""

from __future__ import annotations

import json
from typing import Any

from approvals.models import ApprovalSignature
from textpolicy.utc import utc_iso

RECORD_VERSION = 1


def signature_record(signature: ApprovalSignature) -> dict[str, Any]:
    return {
        "record_version": RECORD_VERSION,
        "signature_id": signature.pk,
        "ladder_id": signature.ladder_id,
        **signature_fields(signature),
    }


def signature_fields(signature: ApprovalSignature) -> dict[str, Any]:
    """What was signed, by whom, as what and when: the fields the record and ``approvals.json`` share."""
    return {
        "stage_number": signature.stage_index + 1,
        "stage_name": signature.stage_name,
        "required_role": signature.required_role,
        "iteration": signature.iteration,
        "decision": signature.decision,
        "signer": signature.signer_username,
        "printed_name": signature.printed_name,
        "signed_as": signature.signed_as,
        "signed_at": utc_iso(signature.signed_at),
        "meaning": signature.meaning,
        "comment": signature.comment,
        "narrative_digest": signature.narrative_digest,
    }


def signature_record_bytes(signature: ApprovalSignature) -> bytes:
    text = json.dumps(signature_record(signature), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode("utf-8")
