from django import template

register = template.Library()


@register.filter
def duration_minutes(value, style: str = "") -> str:
    """``95`` → ``1 h 35 min`` (``1h 35m`` with ``"short"``, for tiles); ``None`` → ``—``."""
    if value is None:
        return "—"
    short = style == "short"
    minutes = int(round(float(value)))
    if minutes < 60:
        return f"{minutes}m" if short else f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        if short:
            return f"{hours}h {rest}m" if rest else f"{hours}h"
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    if short:
        return f"{days}d {hours}h" if hours else f"{days}d"
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def percent(value) -> str:
    return "—" if value is None else f"{float(value) * 100:.0f} %"


@register.filter
def heat_level(count, maximum) -> int:
    """0–4: how loaded a cell is relative to the busiest cell (drawn as shade and written as a number)."""
    if not count or not maximum:
        return 0
    return max(1, min(4, round(4 * count / maximum)))
