"""Bundle format versions and the content rules each one brings (docs/exports.md, "Bundle format versions").

A format version is fixed when an export is created (``NarrativeExport.bundle_format_version``) and stored on its
artifact when it is packaged, so that replay rebuilds every bundle with the rules it was made with:

1. bundles packaged before formats were numbered (no ``Bundle-Format-Version`` line);
2. the approval record shows control and format characters inert (docs/text-policy.md);
3. faithful records: file names keep their Unicode (NFC), made safe only where BagIt or tar require it; a
   notebook entry ships exactly the bytes its evidence descriptor hashes (no newline appended); the
   narrative's timeline and ``events.ndjson`` hold the experiment's own events, without governance and
   packaging events (``governance.*``, ``narrative_export.*``);
4. the rendition: ``data/dossier.pdf``, a PDF/A-3b copy of the narrative with a signature manifestation per
   signature, embedding the other payload files' manifest, listed in the manifests and named by the attestation
   (docs/exports.md, "The rendition").
"""

from __future__ import annotations

import unicodedata

from exports.bundle.document import RENDITION_FORMAT_VERSION
from textpolicy import is_unsafe

BUNDLE_FORMAT_VERSION = 4
BUNDLE_FORMAT_VERSIONS = (1, 2, 3, 4)
# Exports created before the format was stored on them were rendered with these rules.
LEGACY_EXPORT_FORMAT_VERSION = 2

FAITHFUL_RECORDS_FORMAT = 3
RENDITION_FORMAT = RENDITION_FORMAT_VERSION

# Events the platform writes about the dossier itself rather than about the experiment.
GOVERNANCE_EVENT_PREFIXES = ("governance.", "narrative_export.")

# A file name is one path component of the bag and of every file system it is extracted on: 255 bytes is the
# common limit for a component; the id prefix and room for an extractor's suffix come out of it.
FILE_NAME_MAX_BYTES = 200
_EXTENSION_MAX_BYTES = 24
# Path separators for tar and every extractor; "%" because bagit-python does not decode the "%25" RFC 8493
# asks for (exports/bundle/paths.py); line breaks that the text policy does not already count as unsafe.
_NAME_RESERVED = frozenset("/\\%\t\n\u2028\u2029")


def narrates_governance_events(format_version: int) -> bool:
    """Whether the narrative's timeline (and ``events.ndjson``) of this format lists governance events."""
    return format_version < FAITHFUL_RECORDS_FORMAT


def is_governance_event(event_type: str) -> bool:
    return event_type.startswith(GOVERNANCE_EVENT_PREFIXES)


def bundle_file_name(name: str) -> str:
    """An uploaded file's name as it appears in a format 3 bundle: NFC, with path separators, ``%``, line
    breaks and control or format characters (docs/text-policy.md) replaced by ``_``, outer whitespace removed,
    and at most ``FILE_NAME_MAX_BYTES`` bytes of UTF-8 (the extension kept when it is short). Everything else,
    accents, Cyrillic, spaces and parentheses included, is kept as written. Never empty."""
    text = unicodedata.normalize("NFC", name)
    safe = "".join("_" if char in _NAME_RESERVED or is_unsafe(char) else char for char in text).strip()
    if len(safe.encode()) > FILE_NAME_MAX_BYTES:
        stem, dot, extension = safe.rpartition(".")
        if not dot or not stem or len(extension.encode()) > _EXTENSION_MAX_BYTES:
            stem, dot, extension = safe, "", ""
        room = FILE_NAME_MAX_BYTES - len(f"{dot}{extension}".encode())
        stem = stem.encode()[:room].decode("utf-8", errors="ignore").rstrip()
        safe = f"{stem}{dot}{extension}"
    return safe or "file"
