"""Narrative previews: Markdown rendered without raw HTML, then sanitized, so a dossier can never inject markup.

The source is made inert first (docs/text-policy.md): narratives rendered before the text policy, and any other
Markdown shown here, get their control and format characters as visible ``<U+XXXX>`` escapes, which CommonMark
keeps as plain text.
"""

import nh3
from markdown_it import MarkdownIt

import textpolicy

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_to_safe_html(text: str) -> str:
    source = textpolicy.inert(text or "")
    return nh3.clean(_renderer.render(source), link_rel="noopener noreferrer nofollow")
