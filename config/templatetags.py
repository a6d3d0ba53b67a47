"""Template filters available on every page (registered as builtins in settings.TEMPLATES)."""

from __future__ import annotations

from django import template
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeData, mark_safe

import textpolicy

register = template.Library()
_UNSAFE = textpolicy.unsafe_pattern()


@register.filter(needs_autoescape=True)
def inert(value, autoescape: bool = True):
    """User text shown inert (docs/text-policy.md): control and format characters become visible ``<U+XXXX>``.

    ``{{ stage.name|inert }}``. Markup already marked safe keeps its markup; its escapes are HTML-escaped so they
    read as text, never as a tag."""
    if value is None:
        return value
    if isinstance(value, SafeData):
        return mark_safe(_UNSAFE.sub(lambda match: escape(textpolicy.visible(match.group())), str(value)))  # noqa: S308
    text = textpolicy.inert(str(value))
    return mark_safe(conditional_escape(text)) if autoescape else text  # noqa: S308
