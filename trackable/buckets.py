"""Time bucketing: the aware UTC start of the bucket an event time falls in."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

__all__ = ["MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "GRANULARITIES", "bucket_start", "get_zone"]

MINUTE = "minute"
HOUR = "hour"
DAY = "day"
WEEK = "week"  # ISO weeks, starting on Monday
MONTH = "month"
GRANULARITIES = (MINUTE, HOUR, DAY, WEEK, MONTH)

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


def from_timestamp_ms(ms: int) -> datetime:
    """Return the aware UTC datetime of a millisecond Unix timestamp."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
