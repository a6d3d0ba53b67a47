"""Signed, reproducible BagIt bundles for narrative exports (docs/exports.md, "The bundle"). Pure Python: no Django
here.

Building::

    signer = generate_signer()                      # or Signer(key_id, private_key_from_bytes(decrypted_seed))
    spec = BundleSpec(
        name="dossier-42-v3",                       # the archive's top-level directory
        created_at=export.created_at,               # aware; every mtime and the Bagging-Date come from it
        bag_info=[("External-Identifier", "42"), ("Bag-Group-Identifier", "7"), ...],
        payload=[PayloadFile.from_bytes("narrative.md", text), PayloadFile.from_path("attachments/file/a.csv", p)],
        export_metadata=lambda digests: {"id": 42, "execution_id": 7, "version": 3, "narrative_digest": ...},
        signer=signer,
        compression="zstd",                         # or "gzip"
    )
    with open(tmp_path, "wb") as out:
        result = build_bundle(spec, out)            # BundleResult: sha256 and size of the archive, digests

Verifying and extracting::

    report = verify_bundle(path_or_stream, {key_id: public_key_pem})   # VerificationReport
    report.ok, report.problems                      # Problem(code, path, message), path relative to the bag
    bag_dir = extract_bundle(path_or_stream, empty_dir)

The archive (``.tar.zst``, zstd level 3, or ``.tar.gz``) holds one directory ``<name>/`` with, in this order:
``bag-info.txt``, ``bagit.txt``, ``data/...``, ``export.json``, ``manifest-sha512.txt``, ``signatures/``
(``attestation.dsse.json`` and ``tagmanifest-sha512.txt.sig``, outside every manifest) and
``tagmanifest-sha512.txt`` (covering bagit.txt, bag-info.txt, export.json and manifest-sha512.txt).
``export.json`` follows ``export.schema.json`` in this package; the application supplies its ``export`` object
through ``BundleSpec.export_metadata``, which receives ``{"data/<path>": sha512}``.

Guarantees:
- Reproducible: the same spec (same key, same bytes) gives the same archive bytes, whatever the machine's
  core count. Entries are in tree order, owned by 0/0 with empty owner names, mode 0644/0755, mtime
  ``created_at``; PAX headers only for long or non-ASCII names; no checksum, size or timestamp in the zstd
  frame; gzip mtime 0 and no file name.
- One streaming pass: each payload file is opened once and read in 4 MiB chunks that feed the sha512 and
  the compressor; the archive's sha256 is taken from the compressed bytes as they are written. Memory does
  not grow with payload size.
- ``payload[i].size`` goes into the tar header before the file is read; a file that turns out longer or
  shorter raises ``BundleError("payload_size_mismatch")``. ``out`` then holds a partial archive. Likewise a
  ``payload[i].sha256`` (optional) is checked in the same pass: ``BundleError("payload_digest_mismatch")``.

Keys: the key id is the first 16 hex characters of sha256 over the raw 32-byte Ed25519 public key
(``key_id_for``). ``public_key_pem`` gives the PEM that ``openssl pkeyutl -verify -pubin -rawin`` reads.
Private keys are serialised with ``private_key_to_bytes``/``private_key_from_bytes`` (raw seed, for the
application's keyring) or ``private_key_to_pem``/``private_key_from_pem`` (PKCS#8, optional password).
``dsse_pae``, ``dsse_sign`` and ``dsse_verify`` implement DSSE v1.

Problem codes reported by ``verify_bundle`` (a problem's ``path`` names the file concerned):
``archive_unreadable``, ``archive_trailing_data``, ``unsafe_member``, ``duplicate_member``, ``missing_file``,
``unexpected_file``, ``tag_file_too_large``, ``tag_file_invalid``, ``bagit_declaration_invalid``,
``bag_info_invalid``, ``payload_oxum_mismatch``, ``manifest_invalid``, ``digest_mismatch``,
``missing_payload``, ``unlisted_payload``, ``tag_file_unlisted``, ``export_document_invalid``,
``export_document_inconsistent``, ``unknown_signing_key``, ``signature_invalid``, ``attestation_invalid``,
``attestation_signature_invalid``, ``attestation_key_mismatch``, ``attestation_subject_mismatch``, and for the
rendition ``data/dossier.pdf`` (``rendition.py``): ``rendition_missing`` (a format 4 or later bag without it),
``rendition_too_large``, ``rendition_unreadable``, ``rendition_not_pdfa``, ``rendition_output_intent_missing``,
``rendition_font_not_embedded``, ``rendition_manifest_mismatch``.

A ``DerivedPayloadFile`` (``BundleSpec.derived``) is rendered from the other payload files' manifest once they
are hashed, then written after them; ``bag-info.txt`` and ``bagit.txt`` follow it in that case. The rendition,
which embeds that manifest, is built this way, and is a subject of the attestation.

A member name holding a control or format character (ESC, CR, a bidi override, a zero-width character …) is
``unsafe_member``; problem paths and messages, the bag name and the narrative's title line
(``VerificationReport.narrative_title``) are shown inert, such characters as ``<U+XXXX>`` (docs/text-policy.md),
so printing a report cannot drive a terminal.

Errors raised while building or extracting are ``BundleError`` with a stable ``code``.
"""

from .archive import Compression
from .build import BundleResult, BundleSpec, DerivedPayloadFile, PayloadFile, build_bundle
from .document import RENDITION_FORMAT_VERSION, RENDITION_PATH, export_schema
from .errors import BundleError
from .keys import (
    Signer,
    dsse_pae,
    dsse_sign,
    dsse_verify,
    generate_signer,
    key_id_for,
    load_public_key,
    private_key_from_bytes,
    private_key_from_pem,
    private_key_to_bytes,
    private_key_to_pem,
    public_key_pem,
)
from .paths import validate_payload_path
from .rendition import EMBEDDED_MANIFEST_NAME, embedded_manifest, manifest_without_rendition, rendition_problems
from .verify import Problem, VerificationReport, extract_bundle, read_bundle_file, verify_bundle

__all__ = [
    "EMBEDDED_MANIFEST_NAME",
    "RENDITION_FORMAT_VERSION",
    "RENDITION_PATH",
    "BundleError",
    "BundleResult",
    "BundleSpec",
    "Compression",
    "DerivedPayloadFile",
    "PayloadFile",
    "Problem",
    "Signer",
    "VerificationReport",
    "build_bundle",
    "dsse_pae",
    "dsse_sign",
    "dsse_verify",
    "embedded_manifest",
    "export_schema",
    "extract_bundle",
    "generate_signer",
    "key_id_for",
    "load_public_key",
    "manifest_without_rendition",
    "private_key_from_bytes",
    "private_key_from_pem",
    "private_key_to_bytes",
    "private_key_to_pem",
    "public_key_pem",
    "read_bundle_file",
    "rendition_problems",
    "validate_payload_path",
    "verify_bundle",
]
