"""The one application error type. Services raise these; the API renders them in docs/errors.md's shape."""

from typing import Any


class DossierError(Exception):
    status_code = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(DossierError):
    status_code = 400
    code = "validation_error"
    default_message = "The request is not valid."


class NotAuthenticated(DossierError):
    status_code = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are invalid."


class PermissionDenied(DossierError):
    status_code = 403
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class NotFound(DossierError):
    status_code = 404
    code = "not_found"
    default_message = "The requested object does not exist."


class Conflict(DossierError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class Gone(DossierError):
    status_code = 410
    code = "gone"
    default_message = "The requested resource is no longer available."


class PayloadTooLarge(DossierError):
    status_code = 413
    code = "payload_too_large"
    default_message = "The upload is larger than allowed."


class UnsupportedMedia(DossierError):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "The media type of the request is not supported."


class StorageFullError(DossierError):
    status_code = 507
    code = "storage_full"
    default_message = "Storage is full; nothing was stored. Try again once space has been freed."


class StorageUnavailableError(DossierError):
    status_code = 503
    code = "storage_unavailable"
    default_message = "Storage is unavailable; nothing was stored. Try again shortly."


class RateLimited(DossierError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests."


class ServerBusy(DossierError):
    """Nothing was done: a bounded resource (a work slot, a password-hash slot) stayed taken; retry after
    ``retry_after_seconds`` (sent as ``Retry-After``)."""

    status_code = 503
    code = "busy"
    default_message = "The server is busy: nothing was done. Try again in a moment."

    def __init__(self, *, retry_after_seconds: int):
        super().__init__(details={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds
        self.headers = {"Retry-After": str(retry_after_seconds)}
