"""The charts above a data model's admin change list: the listed rows' counts per bucket (and per value).

One SQL query sums every counter per bucket over the change list's queryset (its filters, search and
date drill-down applied, every page), from the first listed bucket to the last; buckets are cut in
TRACKABLE_TIME_ZONE, empty ones drawn as 0, rolled up when there would be more than MAX_POINTS. A
breakdown's list also shows the top values of each dimension as horizontal bars (two queries each).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

from trackable.breakdowns import ValueEntry
from trackable.buckets import DAY, GRANULARITIES, HOUR, MINUTE, MONTH, WEEK, YEAR, bucket_start, get_zone, next_bucket_start
from trackable.charts import render_breakdown, render_series
from trackable.conf import settings
from trackable.fields import OTHER, dimension_fields
from trackable.models import TrackableTimeSeriesData, counter_fields, model_field, time_series
from trackable.query import Point
from trackable.rollups import bucket_starts

__all__ = ["MAX_POINTS", "TOP_VALUES", "changelist_charts", "listed_series", "listed_values"]

TOP_VALUES = 10

MAX_POINTS = 400  # more buckets than this are rolled up to a coarser granularity
NOMINAL = {
    MINUTE: timedelta(minutes=1),
    HOUR: timedelta(hours=1),
    DAY: timedelta(days=1),
    WEEK: timedelta(weeks=1),
    MONTH: timedelta(days=31),
    YEAR: timedelta(days=366),
}


def _granularity(own: str, first: datetime, end: datetime) -> str:
    """Return the finest granularity, not finer than `own`, that draws the span in MAX_POINTS buckets."""
    for granularity in GRANULARITIES[GRANULARITIES.index(own) :]:
        if (end - first) / NOMINAL[granularity] <= MAX_POINTS:
            return granularity
    return YEAR


def listed_series(queryset: models.QuerySet) -> tuple[str, dict[str, list[Point]]]:
    """Return (granularity, {counter field: points}) of the rows of `queryset`, summed per bucket."""
    model = time_series(queryset.model)
    fields = counter_fields(model)
    rows = list(queryset.order_by().values("collected_during").annotate(**{f"trackable_{f}": Sum(f) for f in fields}))
    if not rows:
        return model.granularity, {}
    zone = get_zone(settings.time_zone)
    first = min(r["collected_during"] for r in rows)
    last = max(r["collected_during"] for r in rows)
    granularity = _granularity(model.granularity, first, last + NOMINAL[model.granularity])
    end = next_bucket_start(bucket_start(last, granularity, zone), granularity, zone)
    starts = bucket_starts(bucket_start(first, granularity, zone), end, granularity, zone)
    sums: dict[str, dict[datetime, int]] = {f: dict.fromkeys(starts, 0) for f in fields}
    for row in rows:
        key = bucket_start(row["collected_during"], granularity, zone)
        for f in fields:
            sums[f][key] = sums[f].get(key, 0) + int(row[f"trackable_{f}"] or 0)
    return granularity, {f: [Point(s.astimezone(zone), sums[f][s]) for s in starts] for f in fields}


def listed_values(queryset: models.QuerySet, dimension: str, field: str, n: int = TOP_VALUES) -> list[ValueEntry]:
    """Return the top `n` values of `dimension` by `field` over the rows of `queryset`, then "(other)"."""
    ranked = queryset.order_by().exclude(**{dimension: OTHER}).values(dimension).annotate(t=Sum(field)).filter(t__gt=0)
    top = [(v, int(t)) for v, t in ranked.order_by("-t", dimension)[:n].values_list(dimension, "t")]
    whole = int(queryset.order_by().aggregate(t=Coalesce(Sum(field), 0))["t"])
    rest = whole - sum(t for _, t in top)
    entries = top + ([(OTHER, rest)] if rest else [])
    return [ValueEntry(v, t, t / whole if whole else 0.0) for v, t in entries]


def changelist_charts(queryset: models.QuerySet) -> SafeString:
    """Render one chart per counter of the rows a data model's change list shows (all its pages)."""
    if not issubclass(queryset.model, TrackableTimeSeriesData):
        return mark_safe("")
    granularity, series = listed_series(queryset)
    model = queryset.model
    bars = []
    for dim in dimension_fields(model):
        for name in counter_fields(model):
            if name in getattr(model, "spider_fields", {}).values():
                continue
            title = f"{str(model_field(model, name).verbose_name).capitalize()} of the listed rows by {dim.verbose_name}"
            bars.append(render_breakdown(listed_values(queryset, dim.attname, name), title, str(dim.verbose_name).capitalize()))
    return mark_safe("".join(bars)) + format_html_join(
        "",
        "{}",
        (
            (
                render_series(
                    points,
                    granularity,
                    f"{str(model_field(model, name).verbose_name).capitalize()} of the listed rows per {granularity}",
                ),
            )
            for name, points in series.items()
        ),
    )
