"""Request parsers that refuse text the database cannot store (docs/text-policy.md, "Input").

PostgreSQL stores neither NUL (U+0000) in text or jsonb nor lone UTF-16 surrogates (U+D800-U+DFFF): JSON can
carry both as ``\\u0000`` / ``\\ud800`` escapes and Python parses them happily, so without this check such a body
reaches the database and fails there (a 500). Every parser configured for the API runs the check on what it
parsed, keys and nested values included, and refuses the first offender with 400 ``invalid_text`` naming its path
(``payload.notes[2]``) in ``details.field``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from rest_framework import parsers

from config.errors import ValidationFailed
from textpolicy import inert_line

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class InvalidText(ValidationFailed):
    code = "invalid_text"
    default_message = "The request holds text that cannot be stored (a NUL character or a lone surrogate)."


def _key_path(parent: str, key: str) -> str:
    shown = inert_line(key)
    return f"{parent}.{shown}" if parent else shown


def _unstorable_path(value: Any, path: str) -> str | None:
    """The path of the first string (or key) that cannot be stored, or None."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            key_path = _key_path(path, str(key))
            if isinstance(key, str) and _UNSTORABLE.search(key):
                return key_path
            found = _unstorable_path(item, key_path)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _unstorable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def storable_text_check(data: Any) -> None:
    """Raise :class:`InvalidText` for the first NUL or lone surrogate anywhere in ``data`` (parsed JSON, or form
    fields and uploaded file names)."""
    if isinstance(data, parsers.DataAndFiles):
        storable_text_check(data.data)
        storable_text_check(data.files)
        return
    if isinstance(data, QueryDict | MultiValueDict):
        # Form fields (several values for one name are listed) and uploaded files, checked by file name.
        data = {
            key: [getattr(value, "name", value) for value in values]
            if len(values) > 1
            else getattr(values[0], "name", values[0])  # type: ignore[arg-type]
            if values
            else ""
            for key, values in data.lists()
        }
    path = _unstorable_path(data, "")
    if path is not None:
        raise InvalidText(details={"field": path or "(body)"})


# The mixin is used on DRF parsers only: the type checker reads it as one.
if TYPE_CHECKING:
    _Parser = parsers.BaseParser
else:
    _Parser = object


class StorableTextMixin(_Parser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        storable_text_check(parsed)
        return parsed


class JSONParser(StorableTextMixin, parsers.JSONParser):
    pass


class FormParser(StorableTextMixin, parsers.FormParser):
    pass


class MultiPartParser(StorableTextMixin, parsers.MultiPartParser):
    pass
