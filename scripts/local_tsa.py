#!/usr/bin/env python3
"""A local RFC 3161 time-stamping authority for development, demos and the test suite (docs/trusted-time.md).

It answers ``POST`` bodies of type ``application/timestamp-query`` with ``application/timestamp-reply``, signing
through ``openssl ts -reply``. On first start it creates, under ``--dir``, a root CA and a TSA certificate
(extended key usage ``timeStamping``, critical) and writes ``chain.pem`` (TSA certificate, then root), the file
``openssl ts -verify -CAfile`` takes. It is not a production TSA: its keys live unprotected on local disk.

    python scripts/local_tsa.py --port 8318 --dir var/tsa        # serve until interrupted
    python scripts/local_tsa.py --dir var/tsa --init-only         # only create the keys and certificates

``--fail`` answers every request with 503, for drills of a TSA that is down.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_QUERY_BYTES = 16 * 1024
POLICY_OID = "1.3.6.1.4.1.61234.1.1"  # a private-arc policy id for the local TSA

CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dossier local TSA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
    return builder.sign(signing_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def tsa_init(directory: Path) -> Path:
    """Create the CA, the TSA certificate and the openssl configuration once; return the chain file."""
    directory.mkdir(parents=True, exist_ok=True)
    chain = directory / "chain.pem"
    if chain.exists():
        return chain
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _certificate(
        _name("Dossier local TSA root"), _name("Dossier local TSA root"), root_key.public_key(), root_key, ca=True
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = _certificate(_name("Dossier local TSA"), root.subject, tsa_key.public_key(), root_key, ca=False)
    key_path = directory / "tsa.key"
    key_path.write_bytes(
        tsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    (directory / "tsa.crt").write_bytes(_pem(tsa))
    (directory / "root.pem").write_bytes(_pem(root))
    (directory / "serial").write_text("01\n")
    (directory / "openssl.cnf").write_text(CONFIG.format(dir=directory.resolve(), policy=POLICY_OID))
    chain.write_bytes(_pem(tsa) + _pem(root))
    return chain


class _Handler(BaseHTTPRequestHandler):
    server_version = "DossierLocalTSA/1"
    directory: Path
    fail = False
    lock = threading.Lock()  # openssl's serial file is read and rewritten on every reply

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        length = int(self.headers.get("Content-Length") or 0)
        if self.fail:
            self._answer(503, b"local TSA is set to fail\n", "text/plain")
            return
        if self.headers.get_content_type() != "application/timestamp-query" or not 0 < length <= MAX_QUERY_BYTES:
            self._answer(400, b"expected an application/timestamp-query body\n", "text/plain")
            return
        query = self.rfile.read(length)
        reply = self._reply(query)
        if reply is None:
            self._answer(500, b"openssl ts -reply failed\n", "text/plain")
            return
        self._answer(200, reply, "application/timestamp-reply")

    def _reply(self, query: bytes) -> bytes | None:
        with tempfile.TemporaryDirectory() as scratch, self.lock:
            query_path, reply_path = Path(scratch, "q.tsq"), Path(scratch, "r.tsr")
            query_path.write_bytes(query)
            done = subprocess.run(  # noqa: S603 - fixed arguments, our own paths
                [  # noqa: S607 - the system openssl
                    "openssl",
                    "ts",
                    "-reply",
                    "-config",
                    str(self.directory / "openssl.cnf"),
                    "-queryfile",
                    str(query_path),
                    "-out",
                    str(reply_path),
                ],
                capture_output=True,
                check=False,
            )
            if done.returncode != 0 or not reply_path.exists():
                sys.stderr.write(done.stderr.decode(errors="replace"))
                return None
            return reply_path.read_bytes()

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        return


def serve(*, host: str, port: int, directory: Path, fail: bool = False) -> ThreadingHTTPServer:
    """A started server (call ``serve_forever`` or run it in a thread); used by the test suite too."""
    tsa_init(directory)
    handler = type("Handler", (_Handler,), {"directory": directory, "fail": fail})
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8318)
    parser.add_argument("--dir", type=Path, default=Path("var/tsa"))
    parser.add_argument("--init-only", action="store_true")
    parser.add_argument("--fail", action="store_true", help="answer every request with 503")
    options = parser.parse_args(argv)
    chain = tsa_init(options.dir)
    if options.init_only:
        print(chain)
        return 0
    server = serve(host=options.host, port=options.port, directory=options.dir, fail=options.fail)
    print(f"local TSA at http://{options.host}:{options.port}/ (chain: {chain})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
