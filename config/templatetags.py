"""Template filters available on every page (registered as builtins in settings.TEMPLATES)."""

from __future__ import annotations

from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import conditional_escape, escape, format_html
from django.utils.safestring import SafeData, mark_safe

import textpolicy
from config import humanize, labels

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


@register.filter
def label(code) -> str:
    """The human label of a status, decision, action, role or event type (config/labels.py):
    ``{{ export.status|label }}`` → ``Awaiting approval``."""
    return labels.label(code)


@register.filter
def event_label(code) -> str:
    """An event type on a timeline: the label of a type the server writes, and an experiment's own type (written
    by the lab's clients, e.g. ``step.recorded``) as it was written, since that is the name the lab knows it by.
    Autoescaped as any string; pass it through ``inert`` as other user text."""
    text = "" if code is None else str(code)
    return labels.label(text) if text in labels.labels() else text


@register.filter
def when(moment, style: str = "") -> str:
    """A moment in the viewer's time zone (docs/pages.md), one format on every page, inside a ``<time>`` element:
    ``2026-12-01 10:43 CET``; ``|when:"seconds"`` adds the seconds. Empty for no moment."""
    if not moment:
        return ""
    if isinstance(moment, str):
        moment = parse_datetime(moment)
        if moment is None:
            return ""
    if timezone.is_naive(moment):  # stored times are UTC; a naive one read from JSON is UTC too
        moment = moment.replace(tzinfo=UTC)
    local = timezone.localtime(moment)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if style == "seconds" else "%Y-%m-%d %H:%M")
    return format_html(
        '<time datetime="{}">{} {}</time>',
        moment.astimezone(UTC).isoformat(timespec="seconds"),
        shown,
        humanize.zone_name(local),
    )


@register.filter
def hours(value) -> str:
    """A duration in hours, one way everywhere: ``24`` and ``24.0`` → ``24 h``, ``1.5`` → ``1.5 h``."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return str(value)
    return f"{number.to_integral() if number == number.to_integral() else number:f} h"


@register.inclusion_tag("includes/key_values.html")
def key_values(data, depth: int = 0):
    """A payload (JSON object) as a readable list of labelled values instead of raw JSON:
    ``{% key_values event.payload %}``. Nested objects become nested lists; lists of scalars read as one line."""
    return {"items": _key_value_items(data, depth)}


def _key_value_items(data, depth: int) -> list[dict]:
    if not isinstance(data, dict):
        return [{"key": "Value", "value": _scalar(data)}]
    items = []
    for key, value in data.items():
        item: dict[str, Any] = {"key": labels.label(key)}
        if isinstance(value, dict) and value and depth < 3:
            item["children"] = _key_value_items(value, depth + 1)
        elif isinstance(value, list) and any(isinstance(entry, dict) for entry in value):
            item["value"] = f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
        elif isinstance(value, list):
            item["value"] = ", ".join(_scalar(entry) for entry in value) or "none"
        else:
            item["value"] = _scalar(value)
        items.append(item)
    return items


def _scalar(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{labels.label(key)}: {_scalar(entry)}" for key, entry in value.items())
    text = str(value)
    return labels.label(text) if text in labels.labels() else text


@register.filter
def duration(seconds) -> str:
    """Seconds in words: ``1080366`` → ``12 days 12 hours``, ``45`` → ``45 seconds``."""
    if seconds is None or seconds == "":
        return ""
    seconds = float(seconds)
    days, rest = divmod(seconds, 86400)
    if days < 2:
        return humanize.duration_in_words(seconds)
    hours = int(rest // 3600)
    return f"{int(days)} days" + (f" {hours} hour{'s' if hours != 1 else ''}" if hours else "")
