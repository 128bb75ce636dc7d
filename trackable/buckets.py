"""Time bucketing: the aware UTC start of the bucket an event time falls in."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "MINUTE",
    "HOUR",
    "DAY",
    "WEEK",
    "MONTH",
    "YEAR",
    "GRANULARITIES",
    "bucket_start",
    "next_bucket_start",
    "get_zone",
]

MINUTE = "minute"
HOUR = "hour"
DAY = "day"
WEEK = "week"  # ISO weeks, starting on Monday
MONTH = "month"
YEAR = "year"
# Finest first: a series can be rolled up from one granularity to any later one.
GRANULARITIES = (MINUTE, HOUR, DAY, WEEK, MONTH, YEAR)

UTC = timezone.utc


@lru_cache(maxsize=64)
def get_zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo called `name`, or raise ImproperlyConfigured naming the setting."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ImproperlyConfigured(
            f"Unknown time zone {name!r} for trackable buckets; set TRACKABLE_TIME_ZONE (or TIME_ZONE) "
            "to an IANA zone name such as 'UTC' or 'Europe/Paris'."
        ) from err


def check_granularity(granularity: str) -> str:
    """Return `granularity` if it is known, else raise ValueError listing the choices."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"Unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}.")
    return granularity


def bucket_start(moment: datetime, granularity: str, zone: ZoneInfo | str = "UTC") -> datetime:
    """Return the aware UTC datetime that starts the bucket containing `moment`.

    Buckets are cut at the boundaries of `zone` (local midnights for days, local hours for hours),
    so a day bucket of a site in Europe/Paris runs from Paris midnight to Paris midnight, 23 or 25
    hours long on the days the clocks change.
    """
    if moment.tzinfo is None:
        raise ValueError("bucket_start() needs an aware datetime; naive times are ambiguous.")
    if isinstance(zone, str):
        zone = get_zone(zone)
    local = moment.astimezone(zone)
    if granularity == MINUTE:
        start = local.replace(second=0, microsecond=0)
    elif granularity == HOUR:
        # replace() keeps `fold`, so the two 01:00 hours of a fall-back night stay two buckets.
        start = local.replace(minute=0, second=0, microsecond=0)
    elif granularity == DAY:
        start = _local_midnight(local.date(), zone)
    elif granularity == WEEK:
        start = _local_midnight(local.date() - timedelta(days=local.weekday()), zone)
    elif granularity == MONTH:
        start = _local_midnight(local.date().replace(day=1), zone)
    elif granularity == YEAR:
        start = _local_midnight(local.date().replace(month=1, day=1), zone)
    else:
        check_granularity(granularity)
        raise AssertionError("unreachable")
    return start.astimezone(UTC)


def _local_midnight(day, zone: ZoneInfo) -> datetime:
    """Return the first instant of `day` in `zone` (midnight, or later where midnight is skipped)."""
    naive = datetime(day.year, day.month, day.day)
    candidate = naive.replace(tzinfo=zone)
    # Where clocks spring forward at midnight (e.g. America/Santiago), 00:00 does not exist; the
    # round trip through UTC lands on the first real instant of the day.
    return candidate.astimezone(UTC).astimezone(zone)


def next_bucket_start(start: datetime, granularity: str, zone: ZoneInfo | str = "UTC") -> datetime:
    """Return the aware UTC start of the bucket after the one starting at `start`."""
    if isinstance(zone, str):
        zone = get_zone(zone)
    if granularity in (MINUTE, HOUR):
        # Minutes and hours are fixed lengths of real time; re-cutting keeps odd offsets aligned.
        step = timedelta(minutes=1) if granularity == MINUTE else timedelta(hours=1)
        return bucket_start(start + step, granularity, zone)
    day = start.astimezone(zone).date()
    if granularity == DAY:
        day += timedelta(days=1)
    elif granularity == WEEK:
        day += timedelta(days=7 - day.weekday())
    elif granularity == MONTH:
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    elif granularity == YEAR:
        day = date(day.year + 1, 1, 1)
    else:
        check_granularity(granularity)
    return _local_midnight(day, zone).astimezone(UTC)


def from_timestamp_ms(ms: int) -> datetime:
    """Return the aware UTC datetime of a millisecond Unix timestamp."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
