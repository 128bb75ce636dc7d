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

from datetime import datetime, timedelta, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Cast, Coalesce, Trunc

from trackable.buckets import DAY, GRANULARITIES, HOUR, MINUTE, UTC, WEEK, bucket_start, check_granularity, get_zone
from trackable.buckets import next_bucket_start
from trackable.conf import settings
from trackable.models import TrackableTimeSeriesData
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

MAX_BUCKETS = 100_000  # a series longer than this is a mistake (minutes over years), not a chart


class QueryError(ValueError):
    """The arguments of a query do not make sense (unknown field, end before start, ...)."""


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
    zone = resolve_zone(tz)
    target = _granularity(dm, granularity, zone)
    _check_window(start, end)
    first = bucket_start(start, target, zone)
    buckets = _bucket_starts(first, end, target, zone)
    rows = _rows(dm, obj, using).filter(collected_during__gte=first, collected_during__lt=end)
    kind = _sql_trunc(dm, target, zone, first, end)
    if kind is None:
        grouped = rows.values(bucket=F("collected_during"))
    else:
        grouped = rows.annotate(bucket=Trunc("collected_during", kind, tzinfo=_sql_zone(kind, zone))).values("bucket")
    sums: dict[datetime, int] = dict.fromkeys(buckets, 0)
    for bucket, value in grouped.annotate(n=Sum(field)).order_by().values_list("bucket", "n"):
        # A local bucket start from Trunc finds its UTC key; rows of zones with odd offsets, grouped per
        # row in SQL, are re-cut into their bucket here.
        key = bucket.astimezone(UTC)  # same-zone keys compare fast
        if key not in sums:
            key = bucket_start(bucket, target, zone)
        sums[key] = sums.get(key, 0) + int(value or 0)
    return [Point(b.astimezone(zone), sums[b]) for b in buckets]


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
    if not fields:
        raise QueryError("Name at least one counter field to total.")
    models_ = {data_model_for(type(obj), f, data_model) for f in fields}
    if len(models_) > 1:
        names = ", ".join(sorted(m.__name__ for m in models_))
        raise QueryError(f"The fields {', '.join(fields)} live in several data models ({names}); total them separately.")
    dm = models_.pop()
    rows = _window(_rows(dm, obj, using), dm, start, end)
    sums = rows.aggregate(**{f: Coalesce(Sum(f), 0) for f in fields})
    return {f: int(sums[f]) for f in fields}


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
    n = _check_n(n)
    rows = _window(_rows_of_model(dm, model, using), dm, start, end)
    ranked = rows.values("object_id").annotate(t=Sum(field)).order_by("-t", "object_id")[:n]
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
    """Return the `n` parent objects with the highest total, each with it as attribute `name`.

    Parents without rows in the window are left out; so are rows of deleted parents.
    """
    qs = queryset._default_manager.all() if isinstance(queryset, type) else queryset
    dm = data_model_for(qs.model, field, data_model)
    n = _check_n(n)
    ranked = _window(_rows_of_model(dm, qs.model, qs.db), dm, start, end)
    ranked = ranked.values("object_id").annotate(t=Sum(field)).order_by("-t", "object_id").values("object_id")[:n]
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
        outer_pk = Cast(outer_pk, dm._meta.get_field("object_id"))
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
    dms = {data_model_for(model, f, data_model) for f in fields}
    if len(dms) != 1:
        raise QueryError(f"The fields {', '.join(fields)} must be counter fields of one data model of {model.__name__}.")
    dm = dms.pop()
    sums = _window(_rows_of_model(dm, model, using), dm, start, end).aggregate(**{f: Coalesce(Sum(f), 0) for f in fields})
    return {f: int(sums[f]) for f in fields}


def last_buckets(
    count: int, granularity: str, tz: str | tzinfo | None = None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """Return the (start, end) window of the last `count` buckets, the current (unfinished) one included."""
    from django.utils import timezone

    zone = resolve_zone(tz)
    try:
        check_granularity(granularity)
    except ValueError as err:
        raise QueryError(str(err)) from err
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise QueryError(f"Ask for at least one bucket, not {count!r}.")
    current = bucket_start(now or timezone.now(), granularity, zone)
    start = current
    for _ in range(count - 1):
        start = bucket_start(start - timedelta(microseconds=1), granularity, zone)
    return start, next_bucket_start(current, granularity, zone)


def last_folded(using: str | None = None) -> datetime | None:
    """Return when the last fold committed (the numbers hold every event folded until then), or None."""
    from django.db.models import Max

    from trackable.models import FoldedMessage

    qs = FoldedMessage.objects.using(using) if using else FoldedMessage.objects.all()
    return qs.aggregate(last=Max("folded_at"))["last"]


# -- helpers -----------------------------------------------------------------------------------------


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


def resolve_zone(tz: str | tzinfo | None) -> ZoneInfo:
    """Return the ZoneInfo named by `tz`, TRACKABLE_TIME_ZONE when None; raise QueryError if unknown."""
    if tz is None:
        return get_zone(settings.time_zone)
    if isinstance(tz, ZoneInfo):
        return tz
    if isinstance(tz, str):
        try:
            return get_zone(tz)
        except Exception as err:  # ImproperlyConfigured names the setting; here the caller named the zone
            raise QueryError(f"Unknown time zone {tz!r}; give an IANA zone name such as 'Europe/Paris'.") from err
    if tz is UTC:
        return get_zone("UTC")
    raise QueryError(f"tz must be a zoneinfo.ZoneInfo or a zone name, not {tz!r}.")


def _granularity(dm: type[models.Model], granularity: str | None, zone: ZoneInfo) -> str:
    source = dm.granularity
    rank = GRANULARITIES.index
    if rank(source) >= rank(DAY) and zone.key != get_zone(settings.time_zone).key:
        raise QueryError(
            f"{dm.__name__} counts per {source} cut in {settings.time_zone}; its buckets cannot be regrouped "
            f"in {zone.key}. Query it without tz=, or count in a finer data model."
        )
    if granularity is None:
        return source
    try:
        check_granularity(granularity)
    except ValueError as err:
        raise QueryError(str(err)) from err
    if rank(granularity) < rank(source):
        raise QueryError(
            f"{dm.__name__} counts per {source}, so it cannot be split into {granularity}s; "
            f"choose {', '.join(GRANULARITIES[rank(source):])}."
        )
    if source == WEEK and granularity != WEEK:
        raise QueryError(f"{dm.__name__} counts per ISO week, and weeks straddle {granularity}s; query it per week.")
    return granularity


def _bucket_starts(first: datetime, end: datetime, granularity: str, zone: ZoneInfo) -> list[datetime]:
    """Return the UTC starts of the `granularity` buckets from `first` (a bucket start) until `end`."""
    if granularity == MINUTE or (granularity == HOUR and _offset_is_whole_hours(first, zone) and _offset_is_whole_hours(end, zone)):
        # Fixed steps of real time: a local minute or (in whole-hour zones) a local hour is a UTC one.
        step = timedelta(minutes=1) if granularity == MINUTE else timedelta(hours=1)
        count = -(-(end - first) // step)
        if count > MAX_BUCKETS:
            raise QueryError(f"That window holds more than {MAX_BUCKETS} {granularity}s; choose a coarser granularity.")
        first = first.astimezone(UTC)
        return [first + i * step for i in range(count)]
    if granularity == DAY:
        # Local dates step by one; one conversion per day (a skipped local midnight maps to the first
        # real instant of the day, as bucket_start does).
        day, starts = first.astimezone(zone).date(), []
        while (current := datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)) < end:
            starts.append(current)
            if len(starts) > MAX_BUCKETS:
                raise QueryError(f"That window holds more than {MAX_BUCKETS} days; choose a coarser granularity.")
            day += timedelta(days=1)
        return starts
    starts = []
    current = first
    while current < end:
        starts.append(current)
        if len(starts) > MAX_BUCKETS:
            raise QueryError(f"That window holds more than {MAX_BUCKETS} {granularity}s; choose a coarser granularity.")
        current = next_bucket_start(current, granularity, zone)
    return starts


def _sql_trunc(dm: type[models.Model], target: str, zone: ZoneInfo, start: datetime, end: datetime) -> str | None:
    """Return the Trunc kind that groups rows into `target` buckets in SQL, or None to group by row."""
    if target == dm.granularity:
        return None  # rows already are buckets
    if target == MINUTE:
        return MINUTE
    if target == HOUR:
        # Local hours are UTC hours in whole-hour zones; truncating in UTC keeps the two 01:00 hours of
        # a fall-back night apart, which a local (naive) truncation would merge.
        whole = all(_offset_is_whole_hours(m, zone) for m in (start, end))
        return HOUR if whole else None
    return target  # day, week (ISO, Monday), month, year: cut at local midnights, never ambiguous


def _sql_zone(kind: str, zone: ZoneInfo) -> ZoneInfo:
    return get_zone("UTC") if kind in (MINUTE, HOUR) else zone


def _offset_is_whole_hours(moment: datetime, zone: ZoneInfo) -> bool:
    offset = moment.astimezone(zone).utcoffset()
    return offset is not None and offset.total_seconds() % 3600 == 0


def _pk_kind(model: type[models.Model], name: str | None = None) -> str:
    field = model._meta.get_field(name) if name else model._meta.pk
    if field.is_relation:
        field = field.target_field
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

