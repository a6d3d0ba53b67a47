"""Uploads stream to a temporary file while they are hashed and measured, within a configurable limit.

The client's file name is never used as a storage path: names carrying path parts are refused outright
(rather than silently shortened), and stored files get server-generated names.
"""

from __future__ import annotations

import hashlib
import unicodedata
from contextlib import suppress

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from rest_framework.parsers import MultiPartParser

from config.errors import PayloadTooLarge, StorageFullError, StorageUnavailableError, ValidationFailed
from config.middleware import work_slot_released
from config.parsers import storable_text_check
from exports.storage import FULL_ERRNOS

# Room for the multipart envelope around the file itself.
_ENVELOPE_ALLOWANCE = 64 * 1024


def max_upload_bytes() -> int:
    return settings.DOSSIER_MAX_UPLOAD_BYTES


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The upload is larger than the limit of {limit} bytes.", details={"max_bytes": limit})


def validate_client_filename(name: str) -> str:
    """Return the client's name if it is a plain file name; refuse anything that tries to be a path."""
    if not name or len(name) > 255:
        raise ValidationFailed(
            "The file name must be 1 to 255 characters.", code="invalid_filename", details={"filename": [name[:255]]}
        )
    normalized = unicodedata.normalize("NFC", name)
    bad = (
        "/" in normalized
        or "\\" in normalized
        or normalized in {".", ".."}
        or normalized.startswith(".")
        or any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in normalized)
    )
    if bad:
        raise ValidationFailed(
            "The file name may not contain path separators, control characters or start with a dot.",
            code="invalid_filename",
            details={"filename": [name]},
        )
    return normalized


class HashedUploadedFile(TemporaryUploadedFile):
    sha256: str = ""


class HashingUploadHandler(FileUploadHandler):
    """Writes each uploaded file to disk once, hashing (sha256) and counting bytes as they arrive."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        limit = max_upload_bytes()
        if content_length and content_length > limit + _ENVELOPE_ALLOWANCE:
            raise too_large(limit)

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self._hasher = hashlib.sha256()
        self._size = 0
        self.file = HashedUploadedFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)  # type: ignore[arg-type]

    def receive_data_chunk(self, raw_data, start):
        self._size += len(raw_data)
        limit = max_upload_bytes()
        if self._size > limit:
            self.file.close()
            raise too_large(limit)
        self._hasher.update(raw_data)
        try:
            self.file.write(raw_data)
        except OSError as exc:  # the temporary directory is full or failing: nothing is kept (docs/errors.md)
            with suppress(OSError):
                self.file.close()  # a temporary upload file is deleted when closed
            full = exc.errno in FULL_ERRNOS
            raise (StorageFullError() if full else StorageUnavailableError()) from exc

    def file_complete(self, file_size):
        self.file.seek(0)
        self.file.size = file_size
        self.file.sha256 = self._hasher.hexdigest()
        return self.file


class _StrictNameMultiPartParser(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name):
        return validate_client_filename(file_name)


class StrictMultiPartParser(MultiPartParser):
    """DRF's multipart parser, refusing file names with path parts instead of quietly stripping them."""

    def parse(self, stream, media_type=None, parser_context=None):
        from django.http.multipartparser import MultiPartParserError
        from rest_framework.exceptions import ParseError
        from rest_framework.parsers import DataAndFiles

        parser_context = parser_context or {}
        request = parser_context["request"]
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        try:
            parser = _StrictNameMultiPartParser(meta, stream, request.upload_handlers, encoding)
            with work_slot_released():  # the client sends the body at its own pace (config/middleware.py)
                data, files = parser.parse()
            parsed = DataAndFiles(data, files)
            storable_text_check(parsed)
            return parsed
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
