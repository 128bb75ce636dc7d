"""Read unique visitors back: the union of the sketches of a window's buckets, never a sum of counts.

Each answer is a :class:`~trackable.sketches.Estimate` (estimate, 95 % lower and upper bounds). A
window longer than one salt period (TRACKABLE_VISITOR_SALT_ROTATION) cannot tell that a visitor of two
periods is one person: its uniques are distinct visitors *per period*, added up across periods — see
:func:`deduplicated_within` and docs/uniques.rst.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connections, models

from trackable import sketches
from trackable.buckets import bucket_start, next_bucket_start
from trackable.conf import settings
from trackable.exceptions import AmbiguousField, NotRegistered, QueryError
from trackable.fields import UniqueVisitors, unique_fields
from trackable.query import _rows, _rows_of_model, _window
from trackable.rollups import bucket_starts, check_rollup, resolve_zone
from trackable.sites import site
from trackable.sketches import Estimate

__all__ = [
    "Estimate",
    "UniquePoint",
    "UniqueEntry",
    "unique_field",
    "uniques",
    "uniques_series",
    "top_uniques",
    "queryset_uniques",
    "deduplicated_within",
]


class UniquePoint(NamedTuple):
    """One bucket of a series of unique visitors: its aware start and the estimate."""

    start: datetime
    value: Estimate


class UniqueEntry(NamedTuple):
    """One parent of a top-N by unique visitors."""

    object_id: Any
    value: Estimate


def unique_field(
    model: type[models.Model], field: str, data_model: type[models.Model] | None = None
) -> tuple[type[models.Model], UniqueVisitors]:
    """Return (data model, UniqueVisitors field) called `field` for parents of `model`; raise QueryError if none."""
    try:
        candidates = [data_model] if data_model is not None else site.get_data_models(model)
        if not candidates and model._meta.proxy:
            candidates = site.get_data_models(model._meta.concrete_model or model)
        if not candidates:
            raise NotRegistered(f"The model {model.__name__} is not registered with trackable.")
        matches = [(dm, f) for dm in candidates for f in unique_fields(dm) if f.name == field]
        if len(matches) > 1:
            raise AmbiguousField(
                f"{field!r} is a UniqueVisitors field of several data models of {model.__name__}; pass data_model=."
            )
    except (NotRegistered, AmbiguousField) as err:
        raise QueryError(str(err)) from err
    if not matches:
        names = sorted({f.name for dm in candidates for f in unique_fields(dm)})
        raise QueryError(
            f"{field!r} is not a UniqueVisitors field of {model.__name__}'s data models; those are: {', '.join(names) or 'none'}."
        )
    return matches[0]


def is_unique_field(model: type[models.Model], field: str) -> bool:
    """Return whether `field` names a UniqueVisitors field of a data model of `model`."""
    return any(f.name == field for dm in site.get_data_models(model) for f in unique_fields(dm))


def uniques(
    obj: models.Model,
    field: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> Estimate:
    """Return the distinct visitors of `obj` in the window: the union of its buckets' sketches."""
    dm, f = unique_field(type(obj), field, data_model)
    rows = _window(_rows(dm, obj, using), dm, start, end)
    return sketches.estimate(sketches.union((row[0] for row in fetch_rows(rows.values_list(f.attname))), f.lg_k))


def uniques_series(
    obj: models.Model,
    field: str,
    start: datetime,
    end: datetime,
    *,
    granularity: str | None = None,
    tz: str | tzinfo | None = None,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> list[UniquePoint]:
    """Return the distinct visitors of `obj` per bucket (a coarser `granularity` unions the rows of each)."""
    dm, f = unique_field(type(obj), field, data_model)
    zone = resolve_zone(tz)
    target = check_rollup(dm, granularity, zone)
    rows = _window(_rows(dm, obj, using), dm, start, end)
    first = bucket_start(start, target, zone)
    starts = bucket_starts(first, end, target, zone)
    grouped: dict[datetime, list[Any]] = defaultdict(list)
    for bucket, sketch in fetch_rows(rows.filter(collected_during__gte=first).values_list("collected_during", f.attname)):
        grouped[bucket_start(bucket, target, zone)].append(sketch)
    return [
        UniquePoint(
            s.astimezone(zone),
            sketches.estimate(sketches.union(grouped.get(s, ()), f.lg_k)) if s in grouped else Estimate(0, 0, 0),
        )
        for s in starts
    ]


def top_uniques(
    model: type[models.Model],
    field: str,
    start: datetime | None = None,
    end: datetime | None = None,
    n: int = 10,
    *,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> list[UniqueEntry]:
    """Return the `n` parents of `model` with the most distinct visitors in the window, most first.

    Every parent's sketches in the window are read and unioned in Python: a query of one day over a
    site of ten thousand pages reads ten thousand sketches (a few MB); keep windows and sites in mind.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= 1000:
        raise QueryError(f"n must be an integer from 1 to 1000, not {n!r}.")
    dm, f = unique_field(model, field, data_model)
    rows = _window(_rows_of_model(dm, model, using), dm, start, end).exclude(**{f"{f.attname}__isnull": True})
    per_parent: dict[Any, list[Any]] = defaultdict(list)
    for object_id, sketch in rows.values_list("object_id", f.attname).iterator(chunk_size=2000):
        per_parent[object_id].append(sketch)
    ranked = [UniqueEntry(oid, sketches.estimate(sketches.union(s, f.lg_k))) for oid, s in per_parent.items()]
    ranked.sort(key=lambda e: (-e.value.estimate, str(e.object_id)))
    return ranked[:n]


def queryset_uniques(
    queryset: models.QuerySet,
    field: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    data_model: type[models.Model] | None = None,
) -> Estimate:
    """Return the distinct visitors of all the objects of `queryset` together (one visitor of two counts once)."""
    dm, f = unique_field(queryset.model, field, data_model)
    rows = _window(_rows_of_model(dm, queryset.model, queryset.db), dm, start, end)
    if queryset.query.has_filters():
        rows = rows.filter(object_id__in=queryset.order_by().values("pk"))
    return sketches.estimate(sketches.union(rows.values_list(f.attname, flat=True).iterator(chunk_size=2000), f.lg_k))


def fetch_rows(queryset: models.QuerySet) -> list[tuple]:
    """Return the rows of a values_list() queryset of one object's sketches, as tuples.

    On PostgreSQL with psycopg 3 the rows come in the binary format (sketches.binary_cursor): in the
    text format each sketch travels as hex, twice its size, to be decoded again (a year of daily
    sketches: 2.2 MB instead of 1.1 MB, and most of the time of uniques()). Django's converters apply.
    """
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return list(queryset)
    compiler = queryset.query.get_compiler(queryset.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return []
    with sketches.binary_cursor(connection) as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    return list(compiler.results_iter([fetched], tuple_expected=True))


def deduplicated_within(start: datetime | None, end: datetime | None) -> str | None:
    """Return the salt period (e.g. "1 day") when the window spans more than one, else None.

    Visitors are told apart only within one salt period: in a longer window, one person seen in two
    periods counts twice.
    """
    rotation = settings.VISITOR_SALT_ROTATION
    if rotation == "never":
        return None
    if start is None or end is None:
        return f"1 {rotation}"
    zone = settings.time_zone
    first = bucket_start(start, rotation, zone)
    return None if next_bucket_start(first, rotation, zone) >= end else f"1 {rotation}"

