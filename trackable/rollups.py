"""Plan a rollup: check the granularity and zone, list the bucket starts, choose the SQL truncation.

The query API (trackable.query) groups rows in SQL and fills empty buckets in Python; this module
decides how, reusing the bucket boundaries of trackable.buckets so a rollup cuts exactly where the
fold cut.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone

from trackable.buckets import (
    DAY,
    GRANULARITIES,
    HOUR,
    MINUTE,
    UTC,
    WEEK,
    bucket_start,
    check_granularity,
    get_zone,
    next_bucket_start,
)
from trackable.conf import settings
from trackable.exceptions import QueryError
from trackable.models import time_series

__all__ = [
    "MAX_BUCKETS",
    "resolve_zone",
    "last_buckets",
    "check_rollup",
    "bucket_starts",
    "sql_trunc_kind",
    "sql_zone",
    "offset_is_whole_hours",
]

MAX_BUCKETS = 100_000  # a series longer than this is a mistake (minutes over years), not a chart


def last_buckets(
    count: int, granularity: str, tz: str | tzinfo | None = None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """Return the (start, end) window of the last `count` buckets, the current (unfinished) one included."""
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


def resolve_zone(tz: str | tzinfo | None) -> ZoneInfo:
    """Return the ZoneInfo named by `tz`, TRACKABLE_TIME_ZONE when None; raise QueryError if unknown."""
    if tz is None:
        return get_zone(settings.time_zone)
    if isinstance(tz, ZoneInfo):
        return tz
    if isinstance(tz, str):
        try:
            return get_zone(tz)
        except ImproperlyConfigured as err:  # that message names the setting; here the caller named the zone
            raise QueryError(f"Unknown time zone {tz!r}; give an IANA zone name such as 'Europe/Paris'.") from err
    if tz is UTC:
        return get_zone("UTC")
    raise QueryError(f"tz must be a zoneinfo.ZoneInfo or a zone name, not {tz!r}.")


def check_rollup(dm: type[models.Model], granularity: str | None, zone: ZoneInfo) -> str:
    """Return the granularity to group `dm`'s rows into (its own when None); raise QueryError if impossible."""
    source = time_series(dm).granularity
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


def bucket_starts(first: datetime, end: datetime, granularity: str, zone: ZoneInfo) -> list[datetime]:
    """Return the UTC starts of the `granularity` buckets from `first` (a bucket start) until `end`."""
    if granularity == MINUTE or (granularity == HOUR and offset_is_whole_hours(first, zone) and offset_is_whole_hours(end, zone)):
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


def sql_trunc_kind(dm: type[models.Model], target: str, zone: ZoneInfo, start: datetime, end: datetime) -> str | None:
    """Return the Trunc kind that groups rows into `target` buckets in SQL, or None to group by row."""
    if target == time_series(dm).granularity:
        return None  # rows already are buckets
    if target == MINUTE:
        return MINUTE
    if target == HOUR:
        # Local hours are UTC hours in whole-hour zones; truncating in UTC keeps the two 01:00 hours of
        # a fall-back night apart, which a local (naive) truncation would merge.
        whole = all(offset_is_whole_hours(m, zone) for m in (start, end))
        return HOUR if whole else None
    return target  # day, week (ISO, Monday), month, year: cut at local midnights, never ambiguous


def sql_zone(kind: str, zone: ZoneInfo) -> ZoneInfo:
    """Return the zone SQL truncates `kind` in: UTC for minutes and hours (see sql_trunc_kind)."""
    return get_zone("UTC") if kind in (MINUTE, HOUR) else zone


def offset_is_whole_hours(moment: datetime, zone: ZoneInfo) -> bool:
    """Return whether `zone`'s UTC offset at `moment` is a whole number of hours."""
    offset = moment.astimezone(zone).utcoffset()
    return offset is not None and offset.total_seconds() % 3600 == 0
