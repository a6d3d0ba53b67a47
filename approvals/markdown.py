"""Narrative previews: Markdown rendered without raw HTML, then sanitized, so a dossier can never inject markup."""

import nh3
from markdown_it import MarkdownIt

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_to_safe_html(text: str) -> str:
    return nh3.clean(_renderer.render(text or ""), link_rel="noopener noreferrer nofollow")
