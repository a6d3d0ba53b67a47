"""Path rules shared by the builder, the verifier and the extractor.

Every path that reaches a tar header or a manifest line goes through here, so that what we write is exactly what
we later accept.
"""

import re
import unicodedata

from textpolicy import inert_line

from .errors import BundleError

_BAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# RFC 8493 §2.1.3: CR, LF and "%" (and only those) are percent-encoded in manifest file paths.
_ENCODE = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A"})
_DECODE = re.compile(r"%(25|0[Dd]|0[Aa])")
_DECODED = {"25": "%", "0d": "\r", "0a": "\n"}


def validate_bag_name(name: str) -> str:
    """A bag name is one portable path component: it becomes the archive's top-level directory."""
    if not isinstance(name, str) or not _BAG_NAME.fullmatch(name):
        raise BundleError("invalid_bag_name", f"bag name {name!r} must match {_BAG_NAME.pattern}")
    return name


def validate_payload_path(path: str) -> str:
    """Check a payload path (relative to ``data/``) and return it unchanged, or raise ``BundleError``.

    Rejected: empty, absolute, backslashes, control characters (NUL, CR, LF ...), ``%``, empty, ``.`` or ``..``
    components, leading or trailing whitespace (manifest parsers strip it), and text that is not valid Unicode.
    RFC 8493 would allow CR, LF and ``%`` through percent-encoding, but bagit-python (1.9) does not decode
    ``%25`` and ``sha512sum -c`` decodes nothing, and every bundle must pass both: such names are refused
    here, so the application must map them to something else first.
    """
    problem = payload_path_problem(path)
    if problem:
        raise BundleError("invalid_payload_path", f"payload path {path!r}: {problem}", path=path)
    return path


def payload_path_problem(path: object) -> str | None:
    """Why ``path`` is not an acceptable payload path, or None when it is."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if path.startswith("/"):
        return "must be relative"
    if "\\" in path:
        return "must use '/' as separator, not backslash"
    if inert_line(path) != path:
        # What the verifier refuses in a member name (docs/text-policy.md) is never written in the first place.
        return "must not contain control or format characters (NUL, CR, LF, ESC, bidi or zero-width ...)"
    if "%" in path:
        return "must not contain '%' (bagit-python would not find the percent-encoded name)"
    if path != path.strip():
        return "must not start or end with whitespace"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "must not contain empty, '.' or '..' components"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode"
    return None


def member_path_problem(name: str) -> str | None:
    """Why a path read from an archive is unsafe to extract, or None. Looser than payload paths on purpose:
    an auditor must be able to read (and report on) bags that other tools produced."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "absolute, empty or containing a backslash or NUL"
    if inert_line(name) != name:
        # A control or format character in a name (ESC, bidi override, zero-width ...) can only be meant to
        # mislead whoever reads a listing; docs/text-policy.md.
        return "contains control or format characters"
    if re.match(r"[A-Za-z]:", name):
        return "has a drive letter"
    if any(part in ("", ".", "..") for part in name.rstrip("/").split("/")):
        return "contains an empty, '.' or '..' component"
    return None


def tree_order(path: str) -> tuple[str, ...]:
    """Sort key giving depth-first order by component: a directory right before its contents.

    Python compares str by code point, which is also UTF-8 byte order, so the order does not depend on locale.
    """
    return tuple(path.split("/"))


def unicode_key(path: str) -> str:
    """Two paths with the same key collide on case-preserving, normalising file systems (macOS, Windows)."""
    return unicodedata.normalize("NFC", path).casefold()


def encode_manifest_path(path: str) -> str:
    return path.translate(_ENCODE)


def decode_manifest_path(encoded: str) -> str:
    return _DECODE.sub(lambda match: _DECODED[match.group(1).lower()], encoded)
