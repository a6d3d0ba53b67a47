"""The exceptions of the encryption library, each with a stable snake_case ``code``."""


class CryptoError(Exception):
    """Encryption or key management could not be done; ``code`` is stable and snake_case."""

    code = "crypto_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class DecryptionFailed(CryptoError):
    """An object could not be opened: wrong or missing key, or the ciphertext was changed. No plaintext of the
    failing chunk (or of anything after it) is ever released."""

    code = "decryption_failed"


class KeyringInvalid(CryptoError):
    """A keyring document is malformed (bad JSON, unknown provider, missing or short keys, no active key)."""

    code = "keyring_invalid"


class KeyringUnavailable(CryptoError):
    """A remote key service (AWS KMS) did not answer; the operation may be retried."""

    code = "keyring_unavailable"
