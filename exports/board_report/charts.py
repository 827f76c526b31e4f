"""Inline SVG charts for the board report: horizontal bars, columns, lines and stacked columns.

Every chart is built from elements by ``_element``, which escapes each attribute value and
text; labels (categories, business units) are user data and never reach the markup raw.
Only the finished strings are marked safe for the template.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.safestring import SafeString, mark_safe

FONT = "DejaVu Sans"
INK = "#1f2933"
MUTED = "#616e7c"
GRID = "#d9dee3"
PRIMARY = "#2f5d8a"
SECONDARY = "#6aa56b"


@dataclass(frozen=True)
class Series:
    """One named line or stack layer of a chart."""

    name: str
    values: Sequence[float]
    color: str


def _element(name: str, attrs: dict[str, object], *children: str, text: str | None = None) -> str:
    """``<name attrs>children|text</name>``; attribute values and ``text`` are escaped."""
    rendered = "".join(
        f' {key.replace("_", "-")}="{html.escape(_number(value), quote=True)}"' for key, value in attrs.items()
    )
    body = html.escape(text, quote=False) if text is not None else "".join(children)
    return f"<{name}{rendered}>{body}</{name}>"


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def _svg(width: int, height: int, label: str, *children: str) -> SafeString:
    svg = _element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "class": "chart",
            "width": width,
            "height": height,
            "viewBox": f"0 0 {width} {height}",
            "role": "img",
            "aria-label": label,
            "font-family": FONT,
            "font-size": 11,
        },
        *children,
    )
    return mark_safe(svg)  # built by _element, which escapes every value


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: float = 11, **attrs: object) -> str:
    return _element(
        "text",
        {"x": x, "y": y, "text-anchor": anchor, "font-size": size, "fill": attrs.pop("fill", INK), **attrs},
        text=text,
    )


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def text_width(text: str, size: float = 11) -> float:
    """A generous estimate of ``text``'s width in DejaVu Sans at ``size`` px (no font metrics needed)."""
    em = 0.0
    for char in text:
        if char in " .,:;'|!il":
            em += 0.32
        elif char.isupper() or char.isdigit() or char in "mwMW@%&<>=" or ord(char) > 0x2E7F:
            em += 0.78 if char in "mwMW@%" or ord(char) > 0x2E7F else 0.7
        else:
            em += 0.56
    return em * size


def fit(text: str, width: float, size: float = 11) -> str:
    """``text``, cut with an ellipsis so that it fits in ``width`` px."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def fmt_int(value: float) -> str:
    """``12,345``."""
    return f"{round(value):,}"


def nice_scale(maximum: float, ticks: int = 4) -> tuple[float, float]:
    """A round axis maximum ≥ ``maximum`` and its tick step (1, 2, 2.5 or 5 × 10ⁿ)."""
    if maximum <= 0:
        return 1.0, 1.0 / ticks if ticks else 1.0
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if step < 1:
        step = 1.0  # counts: no fractional ticks
    return step * math.ceil(maximum / step), step


def hbar_chart(
    rows: Sequence[tuple[str, int, float]],
    *,
    width: int = 480,
    label_width: int = 150,
    row_height: int = 20,
    color: str = PRIMARY,
    title: str = "",
) -> SafeString:
    """Horizontal bars: one row per ``(label, count, share)``, count and share printed after the bar."""
    value_width = 92
    top = 4
    height = top + row_height * max(len(rows), 1) + 4
    longest = max((count for _, count, _ in rows), default=0)
    span = width - label_width - value_width
    parts = []
    for i, (label, count, share) in enumerate(rows):
        y = top + i * row_height
        bar = span * count / longest if longest else 0
        parts.append(_text(label_width - 6, y + row_height * 0.68, fit(label, label_width - 8), anchor="end"))
        parts.append(
            _element(
                "rect", {"x": label_width, "y": y + 3, "width": max(bar, 0.5), "height": row_height - 6, "fill": color}
            )
        )
        parts.append(_text(label_width + bar + 5, y + row_height * 0.68, f"{fmt_int(count)} ({share:.0%})", fill=MUTED))
    if not rows:
        parts.append(_text(width / 2, top + row_height * 0.68, "No data", anchor="middle", fill=MUTED))
    return _svg(width, height, title, *parts)


def column_chart(
    rows: Sequence[tuple[str, int, float]],
    *,
    width: int = 480,
    height: int = 200,
    color: str = PRIMARY,
    title: str = "",
) -> SafeString:
    """Vertical columns with the count above each and the label below."""
    left, right, top, bottom = 40, 10, 18, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    maximum, step = nice_scale(max((count for _, count, _ in rows), default=0))
    parts = _y_axis(left, top, plot_w, plot_h, maximum, step)
    slot = plot_w / max(len(rows), 1)
    for i, (label, count, share) in enumerate(rows):
        h = plot_h * count / maximum
        x = left + i * slot + slot * 0.2
        parts.append(
            _element("rect", {"x": x, "y": top + plot_h - h, "width": slot * 0.6, "height": max(h, 0.5), "fill": color})
        )
        parts.append(_text(x + slot * 0.3, top + plot_h - h - 4, f"{fmt_int(count)} ({share:.0%})", anchor="middle"))
        parts.append(_text(x + slot * 0.3, top + plot_h + 16, fit(label, slot - 4), anchor="middle"))
    return _svg(width, height, title, *parts)


def _y_axis(left: float, top: float, plot_w: float, plot_h: float, maximum: float, step: float) -> list[str]:
    """Horizontal grid lines with their values, and the baseline."""
    parts = []
    ticks = round(maximum / step)
    for i in range(ticks + 1):
        value = step * i
        y = top + plot_h - plot_h * value / maximum
        parts.append(_element("line", {"x1": left, "y1": y, "x2": left + plot_w, "y2": y, "stroke": GRID}))
        parts.append(_text(left - 5, y + 4, fmt_int(value), anchor="end", size=10, fill=MUTED))
    parts.append(
        _element("line", {"x1": left, "y1": top + plot_h, "x2": left + plot_w, "y2": top + plot_h, "stroke": MUTED})
    )
    return parts


def _x_labels(labels: Sequence[str], left: float, slot: float, y: float) -> list[str]:
    """Category labels under the plot, thinned so they never overlap."""
    every = max(1, math.ceil(56 / slot)) if slot > 0 else 1
    return [
        _text(left + slot * (i + 0.5), y, label, anchor="middle", size=10, fill=MUTED)
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = []
    for item in series:
        parts.append(_element("rect", {"x": x, "y": y - 9, "width": 10, "height": 10, "fill": item.color}))
        parts.append(_text(x + 14, y, item.name))
        x += 24 + 7 * len(item.name)
    return parts


def line_chart(
    labels: Sequence[str], series: Sequence[Series], *, width: int = 1000, height: int = 240, title: str = ""
) -> SafeString:
    """Lines over month labels, with points, a value grid and a legend above the plot."""
    left, right, top, bottom = 48, 12, 28, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    maximum, step = nice_scale(max((v for s in series for v in s.values), default=0))
    parts = _y_axis(left, top, plot_w, plot_h, maximum, step)
    slot = plot_w / max(len(labels), 1)
    for item in series:
        points = [
            (left + slot * (i + 0.5), top + plot_h - plot_h * value / maximum) for i, value in enumerate(item.values)
        ]
        if len(points) > 1:
            parts.append(
                _element(
                    "polyline",
                    {
                        "points": " ".join(f"{_number(x)},{_number(y)}" for x, y in points),
                        "fill": "none",
                        "stroke": item.color,
                        "stroke-width": 2.2,
                    },
                )
            )
        if len(points) <= 40:
            parts.extend(_element("circle", {"cx": x, "cy": y, "r": 2.6, "fill": item.color}) for x, y in points)
    parts.extend(_x_labels(labels, left, slot, top + plot_h + 16))
    parts.extend(_legend(series, left, 14))
    return _svg(width, height, title, *parts)


def stacked_column_chart(
    labels: Sequence[str], series: Sequence[Series], *, width: int = 1000, height: int = 240, title: str = ""
) -> SafeString:
    """Stacked columns: one column per label, one layer per series (bottom layer first)."""
    left, right, top, bottom = 48, 12, 28, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    maximum, step = nice_scale(max(totals, default=0))
    parts = _y_axis(left, top, plot_w, plot_h, maximum, step)
    slot = plot_w / max(len(labels), 1)
    bar = max(slot * 0.7, 1)
    for i in range(len(labels)):
        base: float = top + plot_h
        for item in series:
            h = plot_h * item.values[i] / maximum
            if h > 0:
                parts.append(
                    _element(
                        "rect",
                        {
                            "x": left + slot * i + (slot - bar) / 2,
                            "y": base - h,
                            "width": bar,
                            "height": h,
                            "fill": item.color,
                        },
                    )
                )
            base -= h
    parts.extend(_x_labels(labels, left, slot, top + plot_h + 16))
    parts.extend(_legend(series, left, 14))
    return _svg(width, height, title, *parts)
