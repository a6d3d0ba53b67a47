"""Checks of a bundle's human-readable rendition, ``data/dossier.pdf`` (docs/exports.md, "The rendition").

The rendition is a PDF/A-3b document. A verifier holding only the bundle checks, with pikepdf (qpdf):

- its PDF/A identification: the XMP metadata declares ``pdfaid:part`` 3 and ``pdfaid:conformance`` B;
- an OutputIntent (``/GTS_PDFA1`` with an ICC profile) in the document catalogue;
- every font used on every page is embedded (``FontFile``, ``FontFile2`` or ``FontFile3``; Type 3 fonts are
  embedded by construction);
- the embedded file ``manifest-sha512.txt``, an associated file of the document (``/AF``, relationship
  ``/Data`` or ``/Source``), equals the bag's ``manifest-sha512.txt`` without the rendition's own line. The PDF
  cannot hold its own digest, so it carries the digests of every other payload file, and the bag's manifest
  and the attestation carry the PDF's.

Problem codes: ``rendition_unreadable``, ``rendition_not_pdfa``, ``rendition_output_intent_missing``,
``rendition_font_not_embedded``, ``rendition_manifest_mismatch``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pikepdf

from .document import RENDITION_PATH

EMBEDDED_MANIFEST_NAME = "manifest-sha512.txt"
_RELATIONSHIPS = ("/Data", "/Source")
_FONT_FILES = ("/FontFile", "/FontFile2", "/FontFile3")


def manifest_without_rendition(manifest: bytes) -> bytes:
    """The bag's ``manifest-sha512.txt`` less the rendition's line: what the rendition embeds."""
    suffix = f"  {RENDITION_PATH}\n".encode()
    return b"".join(line for line in manifest.splitlines(keepends=True) if not line.endswith(suffix))


def rendition_problems(pdf: bytes, *, bag_manifest: bytes | None) -> list[tuple[str, str]]:
    """Every problem found in the rendition, as ``(code, message)``; an empty list when it passes."""
    try:
        with pikepdf.open(io.BytesIO(pdf)) as document:
            return list(_problems(document, bag_manifest))
    except (pikepdf.PdfError, ValueError) as exc:
        return [("rendition_unreadable", f"not a readable PDF: {exc}")]


def _problems(document: pikepdf.Pdf, bag_manifest: bytes | None) -> Iterator[tuple[str, str]]:
    metadata = document.open_metadata()
    part, conformance = metadata.get("pdfaid:part"), metadata.get("pdfaid:conformance")
    if (part, conformance) != ("3", "B"):
        yield "rendition_not_pdfa", f"the XMP metadata declares PDF/A part {part!r}, conformance {conformance!r}"
    if not _has_output_intent(document):
        yield "rendition_output_intent_missing", "no PDF/A OutputIntent with an ICC profile"
    missing = sorted(_unembedded_fonts(document))
    if missing:
        yield "rendition_font_not_embedded", f"fonts not embedded: {', '.join(missing)}"
    embedded = embedded_manifest(document)
    if embedded is None:
        yield "rendition_manifest_mismatch", f"no associated file {EMBEDDED_MANIFEST_NAME} (relationship Data/Source)"
    elif bag_manifest is not None and embedded != manifest_without_rendition(bag_manifest):
        yield "rendition_manifest_mismatch", "the embedded manifest differs from the bag's manifest-sha512.txt"


def _has_output_intent(document: pikepdf.Pdf) -> bool:
    intents = document.Root.get("/OutputIntents")
    if not isinstance(intents, pikepdf.Array):
        return False
    return any(intent.get("/S") == pikepdf.Name("/GTS_PDFA1") and "/DestOutputProfile" in intent for intent in intents)


def _unembedded_fonts(document: pikepdf.Pdf) -> Iterator[str]:
    """Names of the fonts without an embedded font program, on every page and in every form XObject."""
    seen: set[tuple[int, int]] = set()
    pending = [page.obj.get("/Resources") for page in document.pages]
    while pending:
        resources = pending.pop()
        if not isinstance(resources, pikepdf.Dictionary):
            continue
        fonts, forms = resources.get("/Font"), resources.get("/XObject")
        for font in fonts.values() if isinstance(fonts, pikepdf.Dictionary) else ():
            if font.objgen not in seen:
                seen.add(font.objgen)
                if not _font_embedded(font):
                    yield str(font.get("/BaseFont", "(unnamed)"))
        for form in forms.values() if isinstance(forms, pikepdf.Dictionary) else ():
            if form.objgen not in seen and form.get("/Subtype") == pikepdf.Name("/Form"):
                seen.add(form.objgen)
                pending.append(form.get("/Resources"))


def _font_embedded(font: pikepdf.Object) -> bool:
    if font.get("/Subtype") == pikepdf.Name("/Type3"):
        return True
    descendants = font.get("/DescendantFonts")
    target = descendants[0] if isinstance(descendants, pikepdf.Array) and len(descendants) else font
    descriptor = target.get("/FontDescriptor")
    return isinstance(descriptor, pikepdf.Dictionary) and any(key in descriptor for key in _FONT_FILES)


def embedded_manifest(document: pikepdf.Pdf) -> bytes | None:
    """The bytes of the associated file ``manifest-sha512.txt`` (relationship Data or Source), or None."""
    associated = document.Root.get("/AF")
    for spec in associated if isinstance(associated, pikepdf.Array) else ():
        if str(spec.get("/UF", spec.get("/F", ""))) != EMBEDDED_MANIFEST_NAME:
            continue
        if spec.get("/AFRelationship") not in [pikepdf.Name(name) for name in _RELATIONSHIPS]:
            continue
        files = spec.get("/EF")
        stream = files.get("/F") if isinstance(files, pikepdf.Dictionary) else None
        if isinstance(stream, pikepdf.Stream):
            return bytes(stream.read_bytes())
    return None
