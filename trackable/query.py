"""Read the counts back: series, totals, top-N and queryset annotations, each in one SQL query.

Every function takes the parent object (or model) and a counter field name; the data model is found
through the registry like ``send_increment_message`` does (pass ``data_model=`` when several data
models of the parent have the field). Windows are half-open, ``start <= collected_during < end``.

Indexes relied on (both created by the abstract bases, nothing to add):

* the unique constraint on ``(content_type, object_id, collected_during)`` serves :func:`series`,
  :func:`total`, :func:`totals` and :func:`annotate_total` (one parent, a range of buckets);
* the index on ``collected_during`` serves :func:`top` and :func:`top_objects` (every parent, a range).

The content type is matched by ``app_label``/``model`` in a scalar subquery, so no query fills the
content type cache first and every call is exactly one SQL statement.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, NamedTuple, cast

from django.contrib.contenttypes.models import ContentType
from django.db import connections, models
from django.db.models import F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Cast, Coalesce, Trunc

from trackable.buckets import DAY, MONTH, UTC, WEEK, YEAR, bucket_start
from trackable.exceptions import QueryError
from trackable.models import TrackableTimeSeriesData, model_field
from trackable.rollups import bucket_starts, check_rollup, last_buckets, resolve_zone, sql_trunc_kind, sql_zone
from trackable.sites import site

__all__ = [
    "Point",
    "TopEntry",
    "QueryError",
    "series",
    "total",
    "totals",
    "top",
    "top_objects",
    "annotate_total",
    "data_model_for",
    "resolve_zone",
    "last_buckets",
    "model_totals",
    "last_folded",
]


DATE_KINDS = frozenset({DAY, WEEK, MONTH, YEAR})


class Point(NamedTuple):
    """One bucket of a series: its aware start (in the query's zone) and the summed count."""

    start: datetime
    value: int


class TopEntry(NamedTuple):
    """One parent of a top-N answer: its primary key and its total in the window."""

    object_id: Any
    total: int


def data_model_for(
    model: type[models.Model], field: str, data_model: type[models.Model] | None = None
) -> type[models.Model]:
    """Return the data model holding `field` for parents of `model`; raise QueryError if none."""
    from trackable.exceptions import AmbiguousField, NotRegistered, UnknownField

    if not isinstance(field, str):
        raise QueryError(f"The field must be the name of a counter field, not {field!r}.")
    try:
        return site.route(model, field, data_model).data_model
    except (NotRegistered, UnknownField, AmbiguousField) as err:
        raise QueryError(str(err)) from err


def series(
    obj: models.Model,
    field: str,
    start: datetime,
    end: datetime,
    *,
    granularity: str | None = None,
    tz: str | tzinfo | None = None,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> list[Point]:
    """Return the counts of `field` for `obj` per bucket from `start` to `end`, empty buckets as 0.

    `granularity` defaults to the data model's own; a coarser one ("day", "week", "month", "year")
    rolls rows up, cutting buckets at the midnights of `tz` (default: TRACKABLE_TIME_ZONE). The first
    bucket is the one containing `start`; the last one is the one containing the instant before `end`.
    """
    dm = _timed_data_model(type(obj), field, data_model, "series")
    return bucketed(dm, _rows(dm, obj, using), field, start, end, granularity=granularity, tz=tz)


def bucketed(
    dm: type[models.Model],
    rows: models.QuerySet,
    field: str,
    start: datetime,
    end: datetime,
    *,
    granularity: str | None = None,
    tz: str | tzinfo | None = None,
) -> list[Point]:
    """Return the sums of `field` over `rows` (of time series data model `dm`) per bucket, as series() does."""
    zone = resolve_zone(tz)
    target = check_rollup(dm, granularity, zone)
    _check_window(start, end)
    first = bucket_start(start, target, zone)
    buckets = bucket_starts(first, end, target, zone)
    rows = rows.filter(collected_during__gte=first, collected_during__lt=end)
    kind = sql_trunc_kind(dm, target, zone, first, end)
    local = [b.astimezone(zone) for b in buckets]
    if kind in DATE_KINDS:
        # Day and coarser buckets start at local midnights: the local date is the key, which spares
        # converting every row back to an aware datetime.
        keys: list[Any] = [b.date() for b in local]
        grouped = rows.annotate(bucket=Trunc("collected_during", kind, output_field=models.DateField(), tzinfo=zone))
    else:
        keys = buckets
        trunc = Trunc("collected_during", kind, tzinfo=sql_zone(kind, zone)) if kind else F("collected_during")
        grouped = rows.annotate(bucket=trunc)
    sums = dict.fromkeys(keys, 0)
    for bucket, value in grouped.values("bucket").annotate(n=Sum(field)).order_by().values_list("bucket", "n"):
        key = bucket if kind in DATE_KINDS else bucket.astimezone(UTC)
        if key not in sums:  # sub-hour rows of zones with odd offsets, grouped per row in SQL
            key = bucket_start(bucket, target, zone)
        sums[key] += int(value or 0)
    return [Point(start_, sums[key]) for start_, key in zip(local, keys, strict=False)]


def total(
    obj: models.Model,
    field: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> int:
    """Return the sum of `field` for `obj` over the window (all time when no window is given)."""
    return totals(obj, [field], start, end, data_model=data_model, using=using)[field]


def totals(
    obj: models.Model,
    fields: list[str] | tuple[str, ...],
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> dict[str, int]:
    """Return {field: sum} for `obj` over the window; the fields must live in one data model."""
    dm = _one_data_model(type(obj), fields, data_model)
    return _sums(_window(_rows(dm, obj, using), dm, start, end), fields)


def top(
    model: type[models.Model],
    field: str,
    start: datetime | None = None,
    end: datetime | None = None,
    n: int = 10,
    *,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> list[TopEntry]:
    """Return the `n` parents of `model` with the highest total of `field` in the window, highest first."""
    dm = data_model_for(model, field, data_model)
    ranked = _ranked(dm, model, field, start, end, n, using)
    return [TopEntry(oid, int(t)) for oid, t in ranked.values_list("object_id", "t")]


def top_objects(
    queryset: models.QuerySet | type[models.Model],
    field: str,
    start: datetime | None = None,
    end: datetime | None = None,
    n: int = 10,
    *,
    name: str = "trackable_total",
    data_model: type[models.Model] | None = None,
) -> list[models.Model]:
    """Return the `n` objects of `queryset` with the highest total, each with it as attribute `name`.

    The ranking is among the objects of the queryset (a filtered one ranks only its own); parents
    without rows in the window are left out, and so are rows of deleted parents.
    """
    qs = queryset._default_manager.all() if isinstance(queryset, type) else queryset
    dm = data_model_for(qs.model, field, data_model)
    # Only a filtered queryset needs the semi-join; ranking every parent skips it.
    among = qs.order_by().values("pk") if qs.query.has_filters() else None
    ranked = _ranked(dm, qs.model, field, start, end, n, qs.db, among).values("object_id")
    if connections[qs.db].vendor == "mysql":
        # MySQL and MariaDB refuse LIMIT inside an IN subquery: rank first (a second query there).
        chosen = qs.filter(pk__in=[row["object_id"] for row in ranked])
    else:
        chosen = qs.filter(pk__in=_as_pk(ranked, qs.model, dm))
    return list(annotate_total(chosen, field, start, end, name=name, data_model=dm).order_by(f"-{name}", "pk"))


def annotate_total(
    queryset: models.QuerySet,
    field: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    name: str = "trackable_total",
    data_model: type[models.Model] | None = None,
) -> models.QuerySet:
    """Return `queryset` annotated with each parent's total of `field` in the window (0 when none).

    Order or filter by it like any annotation: ``annotate_total(Article.objects.all(), "impressions",
    name="views").order_by("-views")``.
    """
    dm = data_model_for(queryset.model, field, data_model)
    rows = _window(_rows_of_model(dm, queryset.model, queryset.db), dm, start, end)
    outer_pk: Any = OuterRef("pk")
    if _pk_kind(queryset.model) != _pk_kind(dm, "object_id"):
        outer_pk = Cast(outer_pk, model_field(dm, "object_id"))
    per_parent = rows.filter(object_id=outer_pk).order_by().values("object_id").annotate(t=Sum(field)).values("t")
    output = models.BigIntegerField()
    return queryset.annotate(**{name: Coalesce(Subquery(per_parent, output_field=output), Value(0), output_field=output)})


def model_totals(
    model: type[models.Model],
    fields: list[str] | tuple[str, ...],
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> dict[str, int]:
    """Return {field: sum} over every parent of `model` in the window; the fields must share a data model."""
    dm = _one_data_model(model, fields, data_model)
    return _sums(_window(_rows_of_model(dm, model, using), dm, start, end), fields)


def last_folded(using: str | None = None) -> datetime | None:
    """Return when the last fold committed (the numbers hold every event folded until then), or None."""
    from django.db.models import Max

    from trackable.models import FoldedMessage

    qs = FoldedMessage.objects.using(using) if using else FoldedMessage.objects.all()
    return qs.aggregate(last=Max("folded_at"))["last"]


# -- helpers -----------------------------------------------------------------------------------------


def _one_data_model(model: type[models.Model], fields: Any, data_model: Any) -> type[models.Model]:
    if not fields or isinstance(fields, str):
        raise QueryError("Name the counter fields to total as a list, e.g. ['impressions'].")
    found = {data_model_for(model, f, data_model) for f in fields}
    if len(found) > 1:
        names = ", ".join(sorted(m.__name__ for m in found))
        raise QueryError(f"The fields {', '.join(fields)} live in several data models ({names}); total them separately.")
    return found.pop()


def _sums(rows: models.QuerySet, fields: Any) -> dict[str, int]:
    sums = rows.aggregate(**{f: Coalesce(Sum(f), 0) for f in fields})
    return {f: int(sums[f]) for f in fields}


def _ranked(
    dm: Any, model: Any, field: str, start: Any, end: Any, n: int, using: str | None, among: Any = None
) -> models.QuerySet:
    """Return the rows of `model`'s parents (those in `among`, if given) per parent, highest totals `t` first."""
    n = _check_n(n)
    rows = _window(_rows_of_model(dm, model, using), dm, start, end)
    if among is not None:
        if _pk_kind(model) != _pk_kind(dm, "object_id"):
            among = among.values(oid=Cast("pk", dm._meta.get_field("object_id"))).values("oid")
        rows = rows.filter(object_id__in=among)
    return rows.values("object_id").annotate(t=Sum(field)).order_by("-t", "object_id")[:n]


def _rows_of_model(dm: type[models.Model], model: type[models.Model], using: str | None) -> models.QuerySet:
    opts = (model._meta.concrete_model or model)._meta
    qs = dm._default_manager.using(using) if using else dm._default_manager.all()
    # A scalar subquery, not a join: PostgreSQL then estimates the rows of one content type correctly
    # (a join makes it expect a few hundred rows and sort a month of rows on disk instead of hashing).
    content_type = ContentType.objects.db_manager(qs.db).filter(app_label=opts.app_label, model=opts.model_name)
    return qs.filter(content_type=Subquery(content_type.values("pk")[:1]))


def _rows(dm: type[models.Model], obj: models.Model, using: str | None) -> models.QuerySet:
    if obj.pk is None:
        raise QueryError(f"Cannot query counts of an unsaved {type(obj).__name__}: it has no primary key.")
    return _rows_of_model(dm, type(obj), using or obj._state.db).filter(object_id=obj.pk)


def _window(rows: models.QuerySet, dm: type[models.Model], start: datetime | None, end: datetime | None) -> models.QuerySet:
    if start is None and end is None:
        return rows
    if not issubclass(dm, TrackableTimeSeriesData):
        raise QueryError(f"{dm.__name__} keeps one all-time row per parent, so it cannot be queried for a window.")
    if start is not None and end is not None:
        _check_window(start, end)
    if start is not None:
        rows = rows.filter(collected_during__gte=_aware(start, "start"))
    if end is not None:
        rows = rows.filter(collected_during__lt=_aware(end, "end"))
    return rows


def _timed_data_model(model: type[models.Model], field: str, data_model: Any, what: str) -> type[models.Model]:
    dm = data_model_for(model, field, data_model)
    if not issubclass(dm, TrackableTimeSeriesData):
        raise QueryError(f"{dm.__name__} keeps one all-time row per parent, so it has no {what}; use total().")
    return dm


def _aware(moment: Any, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise QueryError(f"{name} must be an aware datetime, not {moment!r}.")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise QueryError(f"{name} is a naive datetime ({moment:%Y-%m-%d %H:%M}); give it a time zone.")
    return moment


def _check_window(start: datetime, end: datetime) -> None:
    if _aware(end, "end") <= _aware(start, "start"):
        raise QueryError(f"The window ends ({end.isoformat()}) before it starts ({start.isoformat()}); swap them.")


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= 1000:
        raise QueryError(f"n must be an integer from 1 to 1000, not {n!r}.")
    return n


def _pk_kind(model: type[models.Model], name: str | None = None) -> str:
    field = model_field(model, name) if name else model._meta.pk
    assert field is not None  # every concrete model has a pk
    if field.is_relation:
        field = cast(models.ForeignKey, field).target_field
    kind = field.get_internal_type()
    if kind in {"CharField", "SlugField", "TextField"}:
        return "text"
    if kind == "UUIDField":
        return "uuid"
    return "int"


def _as_pk(ranked: models.QuerySet, model: type[models.Model], dm: type[models.Model]) -> models.QuerySet:
    if _pk_kind(model) == _pk_kind(dm, "object_id"):
        return ranked
    return ranked.values(pk_value=Cast("object_id", model._meta.pk)).values("pk_value")

