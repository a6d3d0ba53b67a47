"""Server-rendered SVG charts: geometry computed here, drawn by a template (no client-side charting)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    secondary: int


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    left: int
    top: int
    plot_width: float
    plot_height: float
    bars: list[Bar]
    line_points: str
    dots: list[tuple[float, float]]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    empty: bool


def _nice_ceiling(value: int) -> int:
    if value <= 4:
        return 4
    magnitude = 10 ** int(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        ceiling = int(math.ceil(value / (step * magnitude)) * step * magnitude)
        if ceiling >= value:
            return ceiling
    return value


def _short(day: str) -> str:
    return date.fromisoformat(day).strftime("%d %b")


def trend_chart(
    days: Sequence[str], overdue: Sequence[int], blocking: Sequence[int], *, width: int = 720, height: int = 240
) -> TrendChart:
    """Bars for overdue stages per day, a line for all blocking stages, on a shared y axis."""
    left, right, top, bottom = 44, 12, 12, 30
    plot_width, plot_height = width - left - right, height - top - bottom
    ceiling = _nice_ceiling(max([*overdue, *blocking, 0]))
    count = max(len(days), 1)
    slot = plot_width / count
    bar_width = max(2.0, slot * 0.62)

    def y_of(value: int) -> float:
        return round(top + plot_height - plot_height * value / ceiling, 1)

    bars, dots = [], []
    for index, day in enumerate(days):
        x = left + slot * index + (slot - bar_width) / 2
        y = y_of(overdue[index])
        bars.append(
            Bar(
                x=round(x, 1),
                y=y,
                width=round(bar_width, 1),
                height=round(top + plot_height - y, 1),
                label=day,
                value=overdue[index],
                secondary=blocking[index],
            )
        )
        dots.append((round(left + slot * index + slot / 2, 1), y_of(blocking[index])))
    y_ticks = [Tick(at=y_of(ceiling * step // 4), label=str(ceiling * step // 4)) for step in range(5)]
    every = max(1, math.ceil(count / 7))
    x_ticks = [
        Tick(at=round(left + slot * index + slot / 2, 1), label=_short(day))
        for index, day in enumerate(days)
        if (count - 1 - index) % every == 0
    ]
    return TrendChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        bars=bars,
        line_points=" ".join(f"{x},{y}" for x, y in dots),
        dots=dots,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        empty=not any(overdue) and not any(blocking),
    )
