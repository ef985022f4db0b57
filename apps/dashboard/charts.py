"""Small charts as inline SVG, drawn on the server: no JavaScript, no CDN, readable without CSS.

Each chart is an `<svg role="img">` whose `<title>` and `<desc>` name it and list every value,
so a screen reader gets the numbers; every bar also shows its number beside it. Colours come
from CSS classes (`bar`, `bar-ok`, `bar-warn`, `bar-bad`, `bar-muted`) that the dashboard's
stylesheet maps to the admin's colour variables (light and dark themes alike).

Every text that reaches the markup goes through `format_html`/`escape`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

TONES = ("", "ok", "warn", "bad", "muted")
LABEL_CHARS = 26
_ids = itertools.count(1)


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    tone: str = ""
    href: str = ""

    def __post_init__(self):
        if self.tone not in TONES:
            raise ValueError(f"unknown tone {self.tone!r}")
        if self.value < 0:
            raise ValueError("bar values are counts: never negative")


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _rect(bar: Bar, x, y, width, height, unit: str, tooltip: bool = True) -> SafeString:
    """A bar (or legend swatch) in the bar's tone, its label and value as a tooltip."""
    cls = f"bar bar-{bar.tone}" if bar.tone else "bar"
    if not tooltip:
        return format_html(
            '<rect class="{}" x="{}" y="{}" width="{}" height="{}"/>', cls, x, y, width, height
        )
    return format_html(
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}" data-value="{}">'
        "<title>{}: {} {}</title></rect>",
        cls,
        x,
        y,
        width,
        height,
        bar.value,
        bar.label,
        bar.value,
        unit,
    )


def _text(kind: str, x, y, text, anchor: str = "start") -> SafeString:
    return format_html(
        '<text class="{}" x="{}" y="{}" text-anchor="{}">{}</text>', kind, x, y, anchor, text
    )


def _group(kind: str, bar: Bar, *parts: SafeString) -> SafeString:
    """One bar's shapes, as a link to the list it counts when it has one."""
    inner = format_html('<g class="{}">{}</g>', kind, mark_safe("".join(parts)))  # noqa: S308
    return format_html('<a href="{}">{}</a>', bar.href, inner) if bar.href else inner


def _frame(title: str, bars: list[Bar], width, height, parts: list[SafeString], unit: str):
    n = next(_ids)
    desc = "; ".join(f"{b.label}: {b.value} {unit}".rstrip() for b in bars) or "no data"
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{w}" '
        'height="{h}" viewBox="0 0 {w} {h}" aria-labelledby="chart-{n}-title chart-{n}-desc">'
        '<title id="chart-{n}-title">{title}</title><desc id="chart-{n}-desc">{desc}</desc>'
        "{body}</svg>",
        w=width,
        h=height,
        n=n,
        title=title,
        desc=desc,
        body=mark_safe("".join(parts)),  # noqa: S308 - each part is format_html output
    )


def bar_chart(title: str, bars: list[Bar], *, width: int = 420, unit: str = "") -> SafeString:
    """Horizontal bars, one per row: label, bar (length proportional to the value, relative to
    the largest), and the number."""
    row, label_w, number_w = 22, 170, 60
    track = width - label_w - number_w
    peak = max((b.value for b in bars), default=0)
    parts = []
    for i, bar in enumerate(bars):
        y = i * row
        length = round(track * bar.value / peak, 1) if peak else 0
        parts.append(
            _group(
                "row",
                bar,
                _text("label", label_w - 6, y + 15, _short(bar.label), anchor="end"),
                _rect(bar, label_w, y + 4, length, row - 8, unit),
                _text("value", label_w + length + 4, y + 15, bar.value),
            )
        )
    return _frame(title, bars, width, max(len(bars), 1) * row, parts, unit)


def stacked_bar(title: str, bars: list[Bar], *, width: int = 420, unit: str = "") -> SafeString:
    """One bar split in segments proportional to their share of the total, with a legend that
    gives each segment's number."""
    total = sum(b.value for b in bars)
    bar_h, legend_row = 22, 20
    x, segments, legend = 0.0, [], []
    for i, bar in enumerate(bars):
        length = round(width * bar.value / total, 1) if total else 0
        segments.append(_rect(bar, round(x, 1), 0, length, bar_h, unit))
        x += length
        y = bar_h + 8 + i * legend_row
        legend.append(
            _group(
                "legend",
                bar,
                _rect(bar, 0, y, 12, 12, unit, tooltip=False),
                _text("label", 18, y + 11, _short(bar.label)),
                _text("value", width, y + 11, bar.value, anchor="end"),
            )
        )
    return _frame(title, bars, width, bar_h + 8 + len(bars) * legend_row, segments + legend, unit)


def histogram(title: str, bars: list[Bar], *, width: int = 420, unit: str = "") -> SafeString:
    """Columns for ordered buckets (left to right), heights proportional to the values, the
    number above each column and the bucket below it."""
    plot_h, top, bottom = 110, 16, 20
    baseline = top + plot_h
    peak = max((b.value for b in bars), default=0)
    slot = width / max(len(bars), 1)
    column_w = round(slot * 0.7, 1)
    parts = []
    for i, bar in enumerate(bars):
        h = round(plot_h * bar.value / peak, 1) if peak else 0
        x = round(i * slot + (slot - column_w) / 2, 1)
        middle = round(i * slot + slot / 2, 1)
        parts.append(
            _group(
                "column",
                bar,
                _rect(bar, x, round(baseline - h, 1), column_w, h, unit),
                _text("value", middle, round(baseline - h - 4, 1), bar.value, anchor="middle"),
                _text("label", middle, baseline + 14, _short(bar.label), anchor="middle"),
            )
        )
    return _frame(title, bars, width, baseline + bottom, parts, unit)
