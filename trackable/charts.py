"""Server-side charts: a series drawn as inline SVG with an accessible title and a table fallback.

No JavaScript, no CDN: the markup is complete when the page arrives, readable by screen readers
(``role="img"``, ``<title>``, ``<desc>``, a ``<title>`` per point) and backed by a plain table.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from trackable import query
from trackable.buckets import DAY, GRANULARITIES, HOUR, MINUTE, MONTH, WEEK, YEAR, bucket_start, next_bucket_start
from trackable.conf import settings
from trackable.models import model_field, time_series
from trackable.query import Point

__all__ = [
    "LABEL_FORMATS",
    "label",
    "render_chart",
    "render_table",
    "render_series",
    "chart_of",
    "render_bars",
    "render_bars_table",
    "render_breakdown",
    "breakdown_chart_of",
]

LABEL_FORMATS = {
    MINUTE: "%Y-%m-%d %H:%M %Z",
    HOUR: "%Y-%m-%d %H:%M %Z",
    DAY: "%Y-%m-%d",
    WEEK: "%G-W%V",
    MONTH: "%Y-%m",
    YEAR: "%Y",
}

GRANULARITY_RANK = {name: i for i, name in enumerate(GRANULARITIES)}
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 36
_ids = itertools.count(1)


def label(point: Point, granularity: str) -> str:
    """Return the human label of a bucket: '2026-05-01', '2026-W18', '2026-10-25 02:00 CET', ..."""
    return point.start.strftime(LABEL_FORMATS.get(granularity, LABEL_FORMATS[MINUTE]))


def render_chart(points: Sequence[Point], granularity: str, title: str) -> SafeString:
    """Return an inline SVG line chart of `points` (one circle per bucket) titled `title`."""
    uid = f"trackable-chart-{next(_ids)}"
    peak = max((p.value for p in points), default=0)
    low = min(min((p.value for p in points), default=0), 0)  # counters that may go negative
    top = low + max(peak - low + (peak - low) % 2, 2)  # an even span: the middle grid line is a whole number
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points) - 1, 1)

    def xy(i: int, value: int) -> tuple[float, float]:
        return round(LEFT + i * step, 1), round(TOP + plot_h - (value - low) / (top - low) * plot_h, 1)

    coords = [xy(i, p.value) for i, p in enumerate(points)]
    parts = [_axes(low, top, plot_w, plot_h)]
    if coords:
        parts.append(
            format_html('<polyline class="trackable-line" fill="none" stroke="#417690" stroke-width="2" points="{}"/>',
                        " ".join(f"{x},{y}" for x, y in coords))
        )
    for (x, y), point in zip(coords, points, strict=False):
        parts.append(
            format_html(
                '<circle class="trackable-point" cx="{}" cy="{}" r="3" fill="#417690" data-value="{}">'
                "<title>{}: {}</title></circle>",
                x, y, point.value, label(point, granularity), point.value,
            )
        )
    parts.append(_x_labels(points, granularity, coords))
    first, last = (label(points[0], granularity), label(points[-1], granularity)) if points else ("", "")
    desc = f"{len(points)} buckets from {first} to {last}; highest {peak}, total {sum(p.value for p in points)}."
    head = format_html(
        '<svg class="trackable-chart" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {} {}" '
        'width="{}" height="{}" aria-labelledby="{}-title {}-desc" data-points="{}">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        WIDTH, HEIGHT, WIDTH, HEIGHT, uid, uid, len(points), uid, title, uid, desc,
    )
    return mark_safe(head + "".join(parts) + "</svg>")


def _axes(low: int, top: int, plot_w: float, plot_h: float) -> str:
    lines = []
    for fraction in (0, 0.5, 1):
        y = round(TOP + plot_h - fraction * plot_h, 1)
        value = low + (top - low) * fraction
        lines.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#ddd"/>'
                '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{}</text>',
                LEFT, LEFT + plot_w, y, y, LEFT - 6, y + 4, _number(value),
            )
        )
    return "".join(lines)


def _x_labels(points: Sequence[Point], granularity: str, coords: list[tuple[float, float]]) -> str:
    if not points:
        return ""
    shown = sorted({0, len(points) // 2, len(points) - 1})
    anchors = {0: "start", len(points) - 1: "end"}
    return "".join(
        format_html(
            '<text x="{}" y="{}" font-size="11" text-anchor="{}" fill="#555">{}</text>',
            coords[i][0], HEIGHT - 12, anchors.get(i, "middle"), label(points[i], granularity),
        )
        for i in shown
    )


def _number(value: float) -> str:
    """Return a grid label: whole numbers with thousands separators."""
    return f"{int(value):,}"


def render_table(points: Sequence[Point], granularity: str, title: str, value_header: str = "Count") -> SafeString:
    """Return the same series as an HTML table (the chart's text fallback)."""
    rows = "".join(
        format_html("<tr><th scope=\"row\">{}</th><td>{}</td></tr>", label(p, granularity), p.value) for p in points
    )
    return format_html(
        '<table class="trackable-table"><caption>{}</caption><thead><tr><th scope="col">{}</th>'
        '<th scope="col">{}</th></tr></thead><tbody>{}</tbody></table>',
        title, granularity.capitalize(), value_header, mark_safe(rows),
    )


def render_series(points: Sequence[Point], granularity: str, title: str) -> SafeString:
    """Return the chart followed by its table, folded in a <details> element."""
    return format_html(
        '<figure class="trackable-figure"><figcaption>{}</figcaption>{}<details><summary>{}</summary>{}</details></figure>',
        title,
        render_chart(points, granularity, title),
        format_html("Data of {}", title) if title else "Data",
        render_table(points, granularity, title),
    )


def chart_of(
    obj: models.Model,
    field: str,
    *,
    days: int | None = None,
    granularity: str | None = None,
    title: str | None = None,
    data_model: type[models.Model] | None = None,
    now: datetime | None = None,
) -> SafeString:
    """Render the chart and table of `field` for `obj` over the last `days` days (one SQL query).

    The series stops at the bucket holding `now` (default: the current time): the rest of today is
    not drawn as zeros.
    """
    from trackable import uniques

    unique = uniques.is_unique_field(type(obj), field)
    dm = uniques.unique_field(type(obj), field, data_model)[0] if unique else query.data_model_for(type(obj), field, data_model)
    if granularity is None:
        # Finer than a day is unreadable over weeks: hourly and minute rows are rolled up to days.
        own = time_series(dm).granularity
        granularity = own if GRANULARITY_RANK[own] >= GRANULARITY_RANK[DAY] else DAY
    now = now or timezone.now()
    start, end = query.last_buckets(int(days or settings.DEFAULT_WINDOW_DAYS), DAY, now=now)
    zone = query.resolve_zone(None)
    end = min(end, next_bucket_start(bucket_start(now, granularity, zone), granularity, zone))
    if unique:  # the estimate of each bucket's distinct visitors
        people = uniques.uniques_series(obj, field, start, end, granularity=granularity, data_model=dm)
        points = [Point(p.start, p.value.estimate) for p in people]
    else:
        points = query.series(obj, field, start, end, granularity=granularity, data_model=dm)
    name = model_field(dm, field).verbose_name
    return render_series(points, granularity, title or f"{str(name).capitalize()} of {obj} per {granularity}")


# -- horizontal bars: the values of a breakdown -----------------------------------------------------------

BAR_ROW, BAR_LABEL, BAR_VALUE = 24, 220, 110  # px per bar, width of the label and value columns
LABEL_CHARS = 34


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def render_bars(entries: Sequence[Any], title: str) -> SafeString:
    """Return an inline SVG horizontal bar chart of breakdown entries (value, total, share), largest first."""
    from trackable.breakdowns import label as value_label

    uid = f"trackable-bars-{next(_ids)}"
    height = TOP + BAR_ROW * max(len(entries), 1) + 8
    plot_w = WIDTH - BAR_LABEL - BAR_VALUE
    peak = max((e.total for e in entries), default=0) or 1
    parts = []
    for i, entry in enumerate(entries):
        y = TOP + i * BAR_ROW
        name = value_label(entry.value)
        width = round(max(entry.total, 0) / peak * plot_w, 1)
        parts.append(
            format_html(
                '<g class="trackable-bar" data-value="{}" data-total="{}"><title>{}: {} ({})</title>'
                '<text x="{}" y="{}" font-size="12" text-anchor="end" fill="#333">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="#417690"/>'
                '<text x="{}" y="{}" font-size="12" fill="#555">{} · {}</text></g>',
                entry.value, entry.total, name, entry.total, _percent(entry.share),
                BAR_LABEL - 8, y + 16, _short(name),
                BAR_LABEL, y + 4, width, BAR_ROW - 8,
                BAR_LABEL + width + 6, y + 16, f"{entry.total:,}", _percent(entry.share),
            )
        )
    total = sum(e.total for e in entries)
    desc = f"{len(entries)} values, total {total:,}" + (
        f"; the largest is {value_label(entries[0].value)} with {entries[0].total:,}." if entries else "."
    )
    head = format_html(
        '<svg class="trackable-bars" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {} {}" '
        'width="{}" height="{}" aria-labelledby="{}-title {}-desc" data-bars="{}">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        WIDTH, height, WIDTH, height, uid, uid, len(entries), uid, title, uid, desc,
    )
    return mark_safe(head + "".join(parts) + "</svg>")


def _percent(share: float) -> str:
    return f"{share:.1%}"


def render_bars_table(entries: Sequence[Any], title: str, value_header: str = "Value", count_header: str = "Count") -> SafeString:
    """Return breakdown entries as an HTML table: value, count and share (the bar chart's text fallback)."""
    from trackable.breakdowns import label as value_label

    rows = "".join(
        format_html('<tr><th scope="row">{}</th><td>{}</td><td>{}</td></tr>', value_label(e.value), e.total, _percent(e.share))
        for e in entries
    )
    return format_html(
        '<table class="trackable-table"><caption>{}</caption><thead><tr><th scope="col">{}</th><th scope="col">{}</th>'
        '<th scope="col">Share</th></tr></thead><tbody>{}</tbody></table>',
        title, value_header, count_header, mark_safe(rows),
    )


def render_breakdown(entries: Sequence[Any], title: str, value_header: str = "Value") -> SafeString:
    """Return the bar chart followed by its table, folded in a <details> element."""
    return format_html(
        '<figure class="trackable-figure"><figcaption>{}</figcaption>{}<details><summary>{}</summary>{}</details></figure>',
        title,
        render_bars(entries, title),
        format_html("Data of {}", title) if title else "Data",
        render_bars_table(entries, title, value_header),
    )


def breakdown_chart_of(
    target: Any,
    dimension: str,
    field: str | None = None,
    *,
    days: int | None = None,
    n: int = 10,
    title: str | None = None,
    now: datetime | None = None,
    data_model: type[models.Model] | None = None,
) -> SafeString:
    """Render the top `n` values of `dimension` for `target` (an object, a queryset or a model) over the last `days` days."""
    from trackable import breakdowns

    start, end = query.last_buckets(int(days or settings.DEFAULT_WINDOW_DAYS), DAY, now=now or timezone.now())
    entries = breakdowns.top_values(target, dimension, field, start, end, n, data_model=data_model)
    dm, dim, field = breakdowns.breakdown_dimension(breakdowns.target_model(target), dimension, field, data_model)
    header = str(dim.verbose_name).capitalize()
    what = target if isinstance(target, models.Model) else getattr(target, "model", target)._meta.verbose_name_plural
    name = str(model_field(dm, field).verbose_name)
    return render_breakdown(entries, title or f"{name.capitalize()} of {what} by {dim.verbose_name}", header)
