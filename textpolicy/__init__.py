"""Inert text: the one rule for showing user-written text (docs/text-policy.md).

Everything a user writes that reaches a narrative, a page, an e-mail or command output goes through here, so that
no input can reorder what a reader sees (bidi embeddings, overrides and isolates), hide characters (zero-width
characters, soft hyphens, tag characters) or drive a terminal (ESC and the other C0/C1 controls, hence ANSI
sequences). Each such character is shown as a visible ``<U+XXXX>`` escape; newline and tab are kept where the
context allows line structure.

This is a plain module with no Django (and no ``config`` import, which would load Django through the Celery app)
on purpose: the narrative renderer and the bundle library are pure Python and use it too.

The character set is a fixed table rather than a ``unicodedata`` lookup: narratives and approval records must
render to the same bytes on any Python, so a newer Unicode database cannot silently change a bundle. A test fails
when the running Python knows a format character this table lacks; adding it then goes with a new bundle format
version (docs/text-policy.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Code point ranges (inclusive) shown escaped: every control character (Unicode category Cc) except tab and
# newline, every format character (Cf, as of Unicode 15.0), and the surrogates (Cs), which no encoder accepts.
UNSAFE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x0008),  # C0 controls before tab
    (0x000B, 0x001F),  # C0 controls after newline (VT, FF, CR, ..., ESC, ...)
    (0x007F, 0x009F),  # DEL and the C1 controls (NEL, CSI, ...)
    (0x00AD, 0x00AD),  # soft hyphen
    (0x0600, 0x0605),  # Arabic number signs
    (0x061C, 0x061C),  # Arabic letter mark
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),  # Mongolian vowel separator
    (0x200B, 0x200F),  # zero width space, non-joiner, joiner; left-to-right and right-to-left marks
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates (2066-2069), deprecated format controls
    (0xD800, 0xDFFF),  # surrogates (only ever lone in a str)
    (0xFEFF, 0xFEFF),  # zero width no-break space / byte order mark
    (0xFFF9, 0xFFFB),  # interlinear annotation controls
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0001, 0xE0001),  # language tag
    (0xE0020, 0xE007F),  # tag characters
)


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    def escaped(code: int) -> str:
        return f"\\U{code:08x}"

    return "".join(escaped(a) if a == b else f"{escaped(a)}-{escaped(b)}" for a, b in ranges)


_UNSAFE_CLASS = _char_class(UNSAFE_RANGES)
# The unsafe characters an ASCII string can hold. Scanning ASCII text (nearly all text) with this short class is
# several times faster than with the full table, whose astral ranges the regex engine checks one by one.
ASCII_UNSAFE_CLASS = _char_class(tuple((a, min(b, 0x7F)) for a, b in UNSAFE_RANGES if a <= 0x7F))
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
_ASCII_UNSAFE = re.compile(f"[{ASCII_UNSAFE_CLASS}]")
# A quick "anything to escape?" check for other text: exact below U+10000 (a class the engine tests as a bitmap),
# and true for any astral character, which the exact substitution then sorts out.
_BMP_UNSAFE_CLASS = _char_class(tuple(r for r in UNSAFE_RANGES if r[1] < 0x10000))
_ASTRAL = "\\U00010000-\\U0010ffff"
_MAYBE_UNSAFE = re.compile(f"[{_BMP_UNSAFE_CLASS}]|[{_ASTRAL}]")
# One-line contexts also escape tab, newline and the other line breaks (U+2028, U+2029).
_UNSAFE_IN_LINE = re.compile(f"[{_UNSAFE_CLASS}\\t\\n\\u2028\\u2029]")
# A JSON escape sequence; group 1 holds the hex digits of a \u00XX control escape.
_JSON_ESCAPE = re.compile(r"\\(?:u(00[01][0-9a-fA-F]|007[fF])|.)")


def visible(char: str) -> str:
    """The visible form of one character: ``<U+202E>``, ``<U+001B>``, ``<U+E0041>``."""
    return f"<U+{ord(char):04X}>"


def _visible_match(match: re.Match[str]) -> str:
    return visible(match.group())


def is_unsafe(char: str) -> bool:
    """Whether ``char`` (one character) is shown escaped wherever text keeps its lines."""
    return _UNSAFE.fullmatch(char) is not None


def contains_unsafe(text: str) -> bool:
    return (_ASCII_UNSAFE if text.isascii() else _UNSAFE).search(text) is not None


def inert(text: str) -> str:
    """``text`` with every unsafe character shown as ``<U+XXXX>``; newline and tab kept."""
    if (_ASCII_UNSAFE if text.isascii() else _MAYBE_UNSAFE).search(text) is None:
        return text
    return _UNSAFE.sub(_visible_match, text)


def inert_line(text: str) -> str:
    """For one-line output (a command's report line, an e-mail subject): tab and line breaks escaped too."""
    if _UNSAFE_IN_LINE.search(text) is None:
        return text
    return _UNSAFE_IN_LINE.sub(_visible_match, text)


def _decode_control_escape(match: re.Match[str]) -> str:
    hex_digits = match.group(1)
    if hex_digits is None:
        return match.group()
    char = chr(int(hex_digits, 16))
    return char if is_unsafe(char) else match.group()


def json_controls_decoded(json_text: str) -> str:
    """JSON text with its ``\\u00XX`` escapes of unsafe controls turned back into the characters themselves, so
    that the caller's escaping shows ``<U+001B>`` for an ESC whether the encoder escaped it or not. Escaped
    backslashes are respected (``\\\\u001b`` is a backslash followed by text)."""
    if "\\u00" not in json_text:
        return json_text
    return _JSON_ESCAPE.sub(_decode_control_escape, json_text)


def inert_json(json_text: str) -> str:
    """Encoded JSON shown inert: every unsafe character, raw or as a ``\\u00XX`` escape, becomes ``<U+XXXX>``.
    The result is still valid JSON (escapes land inside strings) and keeps its line structure."""
    return inert(json_controls_decoded(json_text))


def translation(extra: Mapping[str, str] | None = None) -> dict[int, str]:
    """A ``str.translate`` table mapping every unsafe character to its visible form, merged with ``extra`` (which
    wins), for renderers that escape their own syntax in the same pass (Markdown)."""
    table = {code: visible(chr(code)) for start, end in UNSAFE_RANGES for code in range(start, end + 1)}
    table.update({ord(char): replacement for char, replacement in (extra or {}).items()})
    return table


def unsafe_pattern(extra: str = "", *, ascii_only: bool = False) -> re.Pattern[str]:
    """A compiled pattern for a renderer's fast "anything to escape?" check: it matches every unsafe character and
    the characters listed in ``extra`` (regex-escaped here), and may match other astral characters too (the
    renderer's exact translation then leaves them alone). ``ascii_only`` gives the faster class that is exact for
    strings where ``str.isascii()`` holds."""
    if ascii_only:
        return re.compile(f"[{ASCII_UNSAFE_CLASS}{re.escape(extra)}]")
    # Like _MAYBE_UNSAFE: may also match safe astral characters, never misses an unsafe one.
    return re.compile(f"[{_BMP_UNSAFE_CLASS}{re.escape(extra)}]|[{_ASTRAL}]")
