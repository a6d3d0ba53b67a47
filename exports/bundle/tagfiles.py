"""BagIt tag files (RFC 8493): rendering for the builder and strict parsing for the verifier, side by side."""

import re
from collections.abc import Iterable, Sequence

from .errors import BundleError
from .paths import decode_manifest_path, encode_manifest_path, tree_order

BAGIT_TXT = "bagit.txt"
BAG_INFO_TXT = "bag-info.txt"
MANIFEST_TXT = "manifest-sha512.txt"
TAGMANIFEST_TXT = "tagmanifest-sha512.txt"
BAGIT_DECLARATION = (("BagIt-Version", "1.0"), ("Tag-File-Character-Encoding", "UTF-8"))
# Set by the engine from the spec and the payload, never by the caller.
COMPUTED_BAG_INFO_LABELS = frozenset({"Bagging-Date", "Payload-Oxum"})

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]*[A-Za-z0-9])?")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_MANIFEST_LINE = re.compile(r"([0-9A-Fa-f]+)[ \t]+(.+)")
_BARE_PERCENT = re.compile(r"%(?!25|0[DdAa])")
_OXUM = re.compile(r"(\d+)\.(\d+)")
SHA512_HEX_LENGTH = 128


def render_tag_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    lines = []
    for label, value in fields:
        _check_field(label, value)
        lines.append(f"{label}: {value}\n")
    return "".join(lines).encode("utf-8")


def _check_field(label: str, value: str) -> None:
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise BundleError("invalid_bag_info", f"bag-info label {label!r} must match {_LABEL.pattern}")
    if not isinstance(value, str) or value != value.strip() or any(ord(char) < 32 for char in value):
        # A value with a line break would become a continuation line or a new field when read back.
        raise BundleError("invalid_bag_info", f"bag-info value for {label} must be one line without outer spaces")


def parse_tag_fields(data: bytes, name: str) -> list[tuple[str, str]]:
    """Read ``Label: value`` lines (RFC 8493 §2.2.2), folding continuation lines that start with whitespace."""
    text = _decode_tag_text(data, name)
    fields: list[tuple[str, str]] = []
    for number, line in enumerate(_lines(text), start=1):
        if line[:1] in (" ", "\t") and fields:
            label, value = fields[-1]
            fields[-1] = (label, f"{value} {line.strip()}")
            continue
        label, colon, value = line.partition(":")
        if not colon or not _LABEL.fullmatch(label) or value[:1] not in (" ", "\t"):
            raise BundleError("tag_file_invalid", f"line {number} is not 'Label: value'", path=name)
        fields.append((label, value[1:]))
    return fields


def render_manifest(digests: Iterable[tuple[str, str]]) -> bytes:
    """``<hex>  <path>`` lines in tree order; two spaces so that ``sha512sum -c`` reads it unchanged."""
    ordered = sorted(digests, key=lambda item: tree_order(item[0]))
    return "".join(f"{digest}  {encode_manifest_path(path)}\n" for path, digest in ordered).encode("utf-8")


def parse_manifest(data: bytes, name: str) -> dict[str, str]:
    """Map decoded path -> lowercase sha512 hex; raise on any line we would not have written ourselves."""
    entries: dict[str, str] = {}
    for number, line in enumerate(_lines(_decode_tag_text(data, name)), start=1):
        match = _MANIFEST_LINE.fullmatch(line)
        if not match or len(match.group(1)) != SHA512_HEX_LENGTH:
            raise BundleError("manifest_invalid", f"line {number} is not '<sha512 hex> <path>'", path=name)
        encoded = match.group(2)
        path = decode_manifest_path(encoded)
        if _BARE_PERCENT.search(encoded):
            raise BundleError("manifest_invalid", f"line {number}: '%' must be written as %25", path=name)
        if path in entries:
            raise BundleError("manifest_invalid", f"line {number}: {path!r} is listed twice", path=name)
        entries[path] = match.group(1).lower()
    return entries


def payload_oxum(sizes: Sequence[int]) -> str:
    return f"{sum(sizes)}.{len(sizes)}"


def parse_payload_oxum(value: str) -> tuple[int, int] | None:
    match = _OXUM.fullmatch(value)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _decode_tag_text(data: bytes, name: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        raise BundleError("tag_file_invalid", "UTF-8 tag files must not start with a byte-order mark", path=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError("tag_file_invalid", f"not UTF-8: {exc}", path=name) from exc


def _lines(text: str) -> list[str]:
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines
