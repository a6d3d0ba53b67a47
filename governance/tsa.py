"""An RFC 3161 time-stamping client over rfc3161-client (docs/trusted-time.md). Django-free.

``timestamp_fetch`` asks each TSA in order for a token over some bytes and returns the first reply that is
granted, answers our nonce, covers exactly those bytes and, when trust roots are given, verifies against them.
Errors carry stable codes: ``tsa_unavailable`` (no TSA answered with a usable token) and ``timestamp_invalid``
(a token that does not verify).
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 256 * 1024

_HASHES = {
    "2.16.840.1.101.3.4.2.1": hashlib.sha256,
    "2.16.840.1.101.3.4.2.2": hashlib.sha384,
    "2.16.840.1.101.3.4.2.3": hashlib.sha512,
}


class TsaError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TsaReply:
    url: str
    response: bytes  # the whole DER TimeStampResp, as `openssl ts -verify -in` reads it
    gen_time: datetime
    serial_number: int
    certificates: tuple[bytes, ...]  # DER certificates the token carries


def _post(url: str, body: bytes, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise TsaError("tsa_unavailable", f"{url} is not an http(s) URL")
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": QUERY_TYPE})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - configured TSA URLs
            if answer.status != 200:
                raise TsaError("tsa_unavailable", f"{url} answered HTTP {answer.status}")
            data = answer.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise TsaError("tsa_unavailable", f"{url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise TsaError("tsa_unavailable", f"{url} did not answer: {exc}") from exc
    if len(data) > MAX_REPLY_BYTES:
        raise TsaError("tsa_unavailable", f"{url} answered more than {MAX_REPLY_BYTES} bytes")
    return data


def _decoded(response: bytes) -> TimeStampResponse:
    try:
        return decode_timestamp_response(response)
    except ValueError as exc:
        raise TsaError("timestamp_invalid", f"not a TimeStampResp: {exc}") from exc


def _check_imprint(reply: TimeStampResponse, data: bytes) -> None:
    imprint = reply.tst_info.message_imprint
    algorithm = _HASHES.get(imprint.hash_algorithm.dotted_string)
    if algorithm is None:
        raise TsaError("timestamp_invalid", f"unsupported imprint algorithm {imprint.hash_algorithm.dotted_string}")
    if imprint.message != algorithm(data).digest():
        raise TsaError("timestamp_invalid", "the token covers other bytes")


def timestamp_verify(
    response: bytes, data: bytes, *, roots: Sequence[x509.Certificate] = (), nonce: int | None = None
) -> TsaReply:
    """Check a stored or fresh reply: granted, over ``data``, our nonce, and (with ``roots``) a valid chain."""
    reply = _decoded(response)
    if reply.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise TsaError("timestamp_invalid", f"status {reply.status}: {' '.join(reply.status_string)}")
    if nonce is not None and reply.tst_info.nonce != nonce:
        raise TsaError("timestamp_invalid", "the token answers another request (nonce mismatch)")
    _check_imprint(reply, data)
    if roots:
        builder = VerifierBuilder()
        for root in roots:
            builder = builder.add_root_certificate(root)
        try:
            builder.build().verify_message(reply, data)
        except VerificationError as exc:
            raise TsaError("timestamp_invalid", f"the token does not verify: {exc}") from exc
    return TsaReply(
        url="",
        response=response,
        gen_time=reply.tst_info.gen_time,
        serial_number=reply.tst_info.serial_number,
        certificates=tuple(sorted(reply.signed_data.certificates)),
    )


def timestamp_fetch(
    data: bytes, urls: Sequence[str], *, timeout: float = 10.0, roots: Sequence[x509.Certificate] = ()
) -> TsaReply:
    """A verified token over ``data`` from the first TSA in ``urls`` that gives one."""
    if not urls:
        raise TsaError("tsa_unavailable", "no time-stamping authority is configured")
    query = TimestampRequestBuilder(data=data, hash_algorithm=HashAlgorithm.SHA256, nonce=True, cert_req=True).build()
    failures = []
    for url in urls:
        try:
            response = _post(url, query.as_bytes(), timeout)
            reply = timestamp_verify(response, data, roots=roots, nonce=query.nonce)
        except TsaError as exc:
            failures.append(exc.message)
            continue
        return TsaReply(
            url=url,
            response=reply.response,
            gen_time=reply.gen_time,
            serial_number=reply.serial_number,
            certificates=reply.certificates,
        )
    raise TsaError("tsa_unavailable", "; ".join(failures))


def certificates_from_pem(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem) if pem.strip() else []
