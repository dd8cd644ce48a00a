"""Geometry for the console's server-side SVG charts: pure functions, no Django, no I/O.

The templates draw what these return (`console/partials/chart_*.html`), so a chart is plain markup that works
without JavaScript and prints well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

PALETTE = ("#2f6fed", "#14a37f", "#f29d38", "#d9485f", "#7c5cdb", "#2aa3c7", "#c2a01f", "#8a94a6", "#5b6474")


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    label: str
    value_label: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class AxisLabel:
    x: float
    label: str


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    columns: list[Column]
    ticks: list[Tick]
    x_labels: list[AxisLabel]
    empty: bool


@dataclass(frozen=True)
class BarRow:
    y: float
    bar_width: float
    label: str
    title: str
    value_label: str
    share: int
    color: str


@dataclass(frozen=True)
class BarChart:
    """Rows of a label and a value on one line, with the bar under them (narrow enough for a phone)."""

    width: int
    height: int
    row_height: int
    text_y: int
    bar_y: int
    bar_height: int
    rows: list[BarRow]


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is at least `value` (an axis maximum people can read)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate.normalize()
    return Decimal(10).scaleb(exponent).normalize()  # unreachable: 10 x 10^k always covers value


def column_chart(
    points: Sequence[tuple[str, Decimal]],
    *,
    fmt: Callable[[Decimal], str],
    width: int = 960,
    height: int = 260,
    label_every: int = 5,
    tick_count: int = 4,
) -> ColumnChart:
    """Vertical columns, one per point, with `tick_count` gridlines and every `label_every`-th x label."""
    left, top, right, bottom = 64, 12, width - 8, height - 28
    plot_w, plot_h = right - left, bottom - top
    peak = max((value for _label, value in points), default=Decimal(0))
    ceiling = nice_ceiling(peak / tick_count) * tick_count  # so that every gridline is a round amount
    slot = plot_w / max(len(points), 1)
    gap = min(4.0, slot * 0.25)
    columns, x_labels = [], []
    for i, (label, value) in enumerate(points):
        h = float(value / ceiling) * plot_h if value > 0 else 0.0
        if 0 < h < 1:
            h = 1.0  # a day with any spend stays visible
        x = left + i * slot + gap / 2
        columns.append(Column(x=round(x, 2), y=round(bottom - h, 2), width=round(slot - gap, 2), height=round(h, 2),
                              label=label, value_label=fmt(value)))
        last = i == len(points) - 1
        if (len(points) - 1 - i) % label_every == 0 or last:
            x_labels.append(AxisLabel(x=round(x + (slot - gap) / 2, 2), label=label))
    ticks = [
        Tick(y=round(bottom - plot_h * k / tick_count, 2), label=fmt(ceiling * k / tick_count))
        for k in range(tick_count + 1)
    ]
    return ColumnChart(width=width, height=height, left=left, top=top, right=right, bottom=bottom, columns=columns,
                       ticks=ticks, x_labels=x_labels, empty=peak <= 0)


def bar_chart(
    items: Sequence[tuple[str, Decimal]],
    *,
    fmt: Callable[[Decimal], str],
    width: int = 400,
    row_height: int = 40,
) -> BarChart:
    """Horizontal bars in the order given, each with its value and share of the total."""
    total = sum((value for _label, value in items), Decimal(0))
    peak = max((value for _label, value in items), default=Decimal(0))
    rows = []
    for i, (label, value) in enumerate(items):
        bar = float(value / peak) * width if peak > 0 else 0.0
        share = int((value * 100 / total).to_integral_value()) if total > 0 else 0
        rows.append(BarRow(y=i * row_height, bar_width=round(max(bar, 1.0 if value > 0 else 0.0), 2),
                           label=_shorten(label, 24), title=label, value_label=fmt(value), share=share,
                           color=PALETTE[i % len(PALETTE)]))
    return BarChart(width=width, height=max(len(rows), 1) * row_height, row_height=row_height, text_y=14,
                    bar_y=21, bar_height=12, rows=rows)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
