"""The daily report's plots as inline SVG, drawn from the report's own aggregates (counts per hour, a histogram).

Why not matplotlib: the report's plots are two bar charts of at most a hundred bars. Importing matplotlib and
rendering two PNGs cost more CPU than reading, judging and summarising a million logged rows together (measured
in `benchmarks/drift.py chain`), and a PNG of raw rows is not what the JSON holds. These plots are drawn from the
numbers that are in the report's JSON, so the picture and the data cannot disagree, and they scale with the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Final

WIDTH: Final = 900
HEIGHT: Final = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 34, 46
_FONT: Final = 'font-family="system-ui, sans-serif" font-size="12" fill="#333"'
_TITLE_FONT: Final = 'font-family="system-ui, sans-serif" font-size="14" fill="#222"'


def _nice_step(span: float, ticks: int = 5) -> float:
    """A 1-2-5 step giving about ``ticks`` ticks over ``span``."""
    raw = span / max(ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _number(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


class _Canvas:
    """Plot area with axes, title and labels; bars are added in data coordinates."""

    def __init__(self, title: str, x_label: str, y_label: str) -> None:
        self.width, self.height = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
        self.parts: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
            f"<title>{escape(title)}</title>",
            f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" {_TITLE_FONT}>{escape(title)}</text>',
            f'<text x="{_LEFT + self.width / 2}" y="{HEIGHT - 8}" text-anchor="middle" {_FONT}>'
            f"{escape(x_label)}</text>",
            f'<text x="14" y="{_TOP + self.height / 2}" text-anchor="middle" {_FONT} '
            f'transform="rotate(-90 14 {_TOP + self.height / 2})">{escape(y_label)}</text>',
        ]

    def y_axis(self, ticks: Sequence[tuple[float, str]]) -> None:
        """Horizontal grid lines and labels at ``(fraction of the height, label)``."""
        for fraction, label in ticks:
            y = _TOP + self.height * (1 - fraction)
            self.parts.append(
                f'<line x1="{_LEFT}" x2="{_LEFT + self.width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{escape(label)}</text>'
            )

    def x_ticks(self, ticks: Sequence[tuple[float, str]]) -> None:
        """Labels under the axis at ``(fraction of the width, label)``."""
        y = _TOP + self.height
        for fraction, label in ticks:
            x = _LEFT + self.width * fraction
            self.parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 4}" stroke="#555"/>'
                f'<text x="{x:.1f}" y="{y + 16}" text-anchor="middle" {_FONT}>{escape(label)}</text>'
            )

    def bar(self, left: float, right: float, low: float, high: float, colour: str, tip: str) -> None:
        """A bar over [left, right] (fractions of the width) from ``low`` to ``high`` (fractions of the height)."""
        if high <= low:
            return
        x = _LEFT + self.width * left
        y = _TOP + self.height * (1 - high)
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{self.width * (right - left):.1f}" '
            f'height="{self.height * (high - low):.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
        )

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        """In a row above the plot's right end (never over a bar)."""
        for index, (name, colour) in enumerate(entries):
            x, y = WIDTH - _RIGHT - 80 * (len(entries) - index), 8
            self.parts.append(
                f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{x + 15}" y="{y + 9}" {_FONT}>{escape(name)}</text>'
            )

    def svg(self) -> str:
        base = _TOP + self.height
        self.parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + self.width}" y1="{base}" y2="{base}" stroke="#555"/>'
            f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{base}" stroke="#555"/></svg>'
        )
        return "".join(self.parts)


def stacked_bars(
    title: str,
    x_label: str,
    y_label: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
) -> str:
    """Bars per label, the series stacked in order (``(name, colour, values)``), with a legend."""
    count = len(labels)
    totals = [sum(values[i] for _, _, values in series) for i in range(count)]
    top = max(max(totals, default=0.0), 1.0)
    step = _nice_step(top)
    top = math.ceil(top / step) * step
    canvas = _Canvas(title, x_label, y_label)
    canvas.y_axis([(k * step / top, _number(k * step)) for k in range(round(top / step) + 1)])
    slot = 1 / max(count, 1)
    canvas.x_ticks([((i + 0.5) * slot, label) for i, label in enumerate(labels)])
    for i, label in enumerate(labels):
        bottom = 0.0
        for name, colour, values in series:
            value = float(values[i])
            canvas.bar(
                (i + 0.1) * slot,
                (i + 0.9) * slot,
                bottom / top,
                (bottom + value) / top,
                colour,
                f"{label} {name}: {value:,.0f}",
            )
            bottom += value
    canvas.legend([(name, colour) for name, colour, _ in series])
    return canvas.svg()


def log_histogram(title: str, x_label: str, y_label: str, edges: Sequence[float], counts: Sequence[int]) -> str:
    """A histogram with a logarithmic count axis (empty bins drawn as nothing, as on any log axis)."""
    positive = [c for c in counts if c > 0]
    canvas = _Canvas(title, x_label, y_label)
    low, high = float(edges[0]), float(edges[-1])
    span = (high - low) or 1.0
    decades = max(1, math.ceil(math.log10(max(positive, default=1))))
    canvas.y_axis([(k / decades, _number(10.0**k)) for k in range(decades + 1)])
    step = _nice_step(span)
    first = math.ceil(low / step) * step
    ticks = [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]
    canvas.x_ticks([((t - low) / span, f"{t:g}") for t in ticks])
    for left, right, count in zip(edges[:-1], edges[1:], counts, strict=True):
        if count > 0:
            height = max(math.log10(count) / decades, 0.004)  # a bin of one is still visible
            canvas.bar(
                (left - low) / span, (right - low) / span, 0.0, height, "#4a6fa5", f"{left:g}–{right:g}: {count:,}"
            )
    return canvas.svg()
