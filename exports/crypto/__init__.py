"""Encryption at rest for stored artifacts and evidence (docs/encryption.md). Pure Python: no Django here.

Writing and reading::

    keyring = keyring_load('{"active":"k1","keys":{"k1":"<base64 of 32 bytes>"}}')   # or a path to that JSON
    with open(path, "wb") as sink, EncryptingWriter(sink, keyring) as out:
        out.write(plaintext_part)                  # chunked AES-256-GCM, one chunk of memory
    with DecryptingReader(open(path, "rb"), keyring) as plain:
        plain.read(1 << 20)                        # DecryptionFailed on a wrong key or changed bytes

Re-wrapping (a new KEK, the same chunks)::

    header = read_header(stream)                   # stream now sits at the first chunk
    new_header = header.rewrapped(keyring, unwrap_data_key(header, keyring))

Errors carry a stable ``code``: ``decryption_failed``, ``keyring_invalid``, ``keyring_unavailable``.
"""

from .errors import CryptoError, DecryptionFailed, KeyringInvalid, KeyringUnavailable
from .keyring import (
    AWS_KMS,
    LOCAL,
    AwsKmsKeyring,
    Keyring,
    LocalKeyring,
    generate_local_document,
    keyring_document_read,
    keyring_document_write,
    keyring_from_document,
    keyring_load,
    keyring_rotated,
)
from .stream import (
    DEFAULT_SEGMENT_SIZE,
    MAGIC,
    DecryptingReader,
    EncryptingReader,
    EncryptingWriter,
    Header,
    decrypt_bytes,
    decrypted_chunks,
    encrypt_bytes,
    encrypted_chunks,
    is_encrypted,
    read_exact,
    read_header,
    unwrap_data_key,
)

__all__ = [
    "AWS_KMS",
    "DEFAULT_SEGMENT_SIZE",
    "LOCAL",
    "MAGIC",
    "AwsKmsKeyring",
    "CryptoError",
    "DecryptingReader",
    "DecryptionFailed",
    "EncryptingReader",
    "EncryptingWriter",
    "Header",
    "Keyring",
    "KeyringInvalid",
    "KeyringUnavailable",
    "LocalKeyring",
    "decrypt_bytes",
    "decrypted_chunks",
    "encrypt_bytes",
    "encrypted_chunks",
    "generate_local_document",
    "is_encrypted",
    "keyring_document_read",
    "keyring_document_write",
    "keyring_from_document",
    "keyring_load",
    "keyring_rotated",
    "read_exact",
    "read_header",
    "unwrap_data_key",
]
