"""Bucketing: event time in a zone's boundaries, stored as aware UTC; DST days are 23 or 25 hours."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured

from trackable.buckets import DAY, HOUR, MINUTE, MONTH, WEEK, bucket_start, get_zone

pytestmark = pytest.mark.no_broker
UTC = timezone.utc


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_utc_buckets():
    t = utc(2026, 3, 18, 13, 47, 12, 500)
    assert bucket_start(t, MINUTE) == utc(2026, 3, 18, 13, 47)
    assert bucket_start(t, HOUR) == utc(2026, 3, 18, 13)
    assert bucket_start(t, DAY) == utc(2026, 3, 18)
    assert bucket_start(t, WEEK) == utc(2026, 3, 16)  # a Monday
    assert bucket_start(t, MONTH) == utc(2026, 3, 1)
    assert bucket_start(t, DAY).tzinfo is UTC


def test_day_in_non_utc_zone_starts_at_local_midnight():
    # 23:30 UTC on the 18th is already the 19th in Paris (UTC+1 in March before the change).
    assert bucket_start(utc(2026, 3, 18, 23, 30), DAY, "Europe/Paris") == utc(2026, 3, 18, 23)
    assert bucket_start(utc(2026, 3, 18, 22, 59), DAY, "Europe/Paris") == utc(2026, 3, 17, 23)


def test_spring_forward_day_is_23_hours():
    paris = "Europe/Paris"  # 2026-03-29 02:00 → 03:00
    start = bucket_start(utc(2026, 3, 29, 12), DAY, paris)
    end = bucket_start(utc(2026, 3, 30, 12), DAY, paris)
    assert start == utc(2026, 3, 28, 23)
    assert end == utc(2026, 3, 29, 22)
    assert (end - start).total_seconds() == 23 * 3600


def test_fall_back_night_has_two_one_oclock_hours():
    ny = "America/New_York"  # 2026-11-01 02:00 EDT → 01:00 EST
    first = bucket_start(utc(2026, 11, 1, 5, 30), HOUR, ny)  # 01:30 EDT
    second = bucket_start(utc(2026, 11, 1, 6, 30), HOUR, ny)  # 01:30 EST
    assert first == utc(2026, 11, 1, 5)
    assert second == utc(2026, 11, 1, 6)
    day = bucket_start(utc(2026, 11, 1, 6, 30), DAY, ny)
    next_day = bucket_start(utc(2026, 11, 2, 12), DAY, ny)
    assert (next_day - day).total_seconds() == 25 * 3600


def test_half_hour_zone_hours():
    assert bucket_start(utc(2026, 1, 5, 10, 10), HOUR, "Asia/Kolkata") == utc(2026, 1, 5, 9, 30)


def test_skipped_midnight_starts_day_at_first_real_instant():
    # Santiago springs forward at 00:00 → 01:00 on 2026-09-06: the day starts at 01:00 local (04:00 UTC).
    start = bucket_start(utc(2026, 9, 6, 15), DAY, "America/Santiago")
    assert start == utc(2026, 9, 6, 4)
    assert start.astimezone(ZoneInfo("America/Santiago")).hour == 1


def test_naive_and_unknown_inputs_are_refused():
    with pytest.raises(ValueError, match="needs an aware datetime"):
        bucket_start(datetime(2026, 1, 1), DAY)
    with pytest.raises(ValueError) as err:
        bucket_start(utc(2026, 1, 1), "fortnight")
    assert str(err.value) == "Unknown granularity 'fortnight'; choose one of minute, hour, day, week, month, year."
    with pytest.raises(ImproperlyConfigured, match="Unknown time zone 'Mars/Olympus'"):
        get_zone("Mars/Olympus")
