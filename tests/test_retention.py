"""Retention: rollups move counts exactly, keep concurrent increments, delete in batches; bad policies fail early."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from tests.legacyapp.models import Page, PageDayData, PageMinuteData
from tests.testapp.models import Article, ArticleHourlyData
from trackable import retention
from trackable.checks import check_operations
from trackable.retention import parse_policies, trim
from trackable.sites import site
from trackable.upsert import upsert_increments

pytestmark = [pytest.mark.django_db, pytest.mark.no_broker, pytest.mark.usefixtures("pages_registered")]
UTC = timezone.utc
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OLD = datetime(2025, 1, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """Make the command's "now" the tests' NOW: no result depends on the day the suite runs."""
    monkeypatch.setattr(retention, "clock", lambda: NOW)


@pytest.fixture
def pages_registered():
    """Register a parent with a fine and a coarse data model, for this module only."""
    site.register(Page, PageMinuteData)
    site.register(Page, PageDayData)
    yield
    site.unregister(Page)


def at(day, hour, minute=0):
    return OLD.replace(day=day, hour=hour, minute=minute)


@pytest.fixture
def hourly():
    ct = ContentType.objects.get_for_model(Article)
    for object_id, moment, reads in [
        (1, at(5, 0), 1), (1, at(5, 1), 2), (1, at(5, 13), 3), (1, at(6, 5), 4), (2, at(5, 10), 5),
        (1, NOW - timedelta(days=1), 6),
    ]:
        ArticleHourlyData.objects.create(content_type=ct, object_id=object_id, collected_during=moment, reads=reads)
    return ct


def hourly_rows():
    return sorted((r.object_id, r.collected_during.isoformat(), r.reads) for r in ArticleHourlyData.objects.all())


RECENT = (1, (NOW - timedelta(days=1)).isoformat(), 6)


def test_hourly_rows_roll_up_into_day_aligned_rows_of_the_same_model(hourly):
    [policy] = parse_policies({"testapp.ArticleHourlyData": {"rollup_after_days": 90, "rollup_to": "day"}})
    result = trim(policy, now=NOW, batch_size=2)
    assert hourly_rows() == sorted([
        (1, "2025-01-05T00:00:00+00:00", 6), (1, "2025-01-06T00:00:00+00:00", 4), (2, "2025-01-05T00:00:00+00:00", 5), RECENT,
    ])
    assert (result.rolled_rows, result.deleted_rows) == (4, 0)
    again = trim(policy, now=NOW)
    assert (again.rolled_rows, hourly_rows()[0]) == (0, (1, "2025-01-05T00:00:00+00:00", 6))


def test_days_are_cut_in_the_buckets_zone(hourly):
    with override_settings(TIME_ZONE="Europe/Paris"):
        [policy] = parse_policies({"testapp.ArticleHourlyData": {"rollup_after_days": 90, "rollup_to": "day"}})
        trim(policy, now=NOW)
    assert hourly_rows() == sorted([
        (1, "2025-01-04T23:00:00+00:00", 6), (1, "2025-01-05T23:00:00+00:00", 4), (2, "2025-01-04T23:00:00+00:00", 5), RECENT,
    ])


def test_minutes_move_into_another_data_model():
    page = Page.objects.create(path="/")
    ct = ContentType.objects.get_for_model(Page)
    for minute, views, score in [(0, 1, -2), (30, 2, 5), (59, 3, 0)]:
        PageMinuteData.objects.create(
            content_type=ct, object_id=page.pk, collected_during=at(5, 10, minute), views=views, score=score
        )
    PageMinuteData.objects.create(content_type=ct, object_id=page.pk, collected_during=NOW, views=7)
    PageDayData.objects.create(content_type=ct, object_id=page.pk, collected_during=OLD, views=100, visitors=9)
    with override_settings(
        TRACKABLE_RETENTION={"legacyapp.PageMinuteData": {"rollup_after_days": 1, "rollup_to": "legacyapp.PageDayData"}}
    ):
        out = StringIO()
        call_command("trim_trackable_data", stdout=out)
    assert out.getvalue() == (
        "legacyapp.PageMinuteData: 3 rows rolled up into legacyapp.PageDayData (day) (1 coarse row updates), 0 rows deleted.\n"
    )
    assert list(PageDayData.objects.values_list("collected_during", "views", "score", "visitors")) == [(OLD, 106, 3, 9)]
    assert list(PageMinuteData.objects.values_list("views", flat=True)) == [7]


def test_an_increment_folded_during_the_rollup_is_kept(hourly, monkeypatch):
    plan = retention._plan
    landed = []

    def plan_then_fold_lands(rows, names, policy, *rest):
        planned = plan(rows, names, policy, *rest)
        if not landed:  # a fold commits +10 into an old bucket after the rollup read it
            upsert_increments(connection, ArticleHourlyData, {(hourly.pk, 1, at(5, 13)): {"reads": 10}})
            landed.append(True)
        return planned

    monkeypatch.setattr(retention, "_plan", plan_then_fold_lands)
    [policy] = parse_policies({"testapp.ArticleHourlyData": {"rollup_after_days": 90, "rollup_to": "day"}})
    trim(policy, now=NOW, batch_size=100)
    assert hourly_rows() == sorted([
        (1, "2025-01-05T00:00:00+00:00", 6), (1, "2025-01-05T13:00:00+00:00", 10), (1, "2025-01-06T00:00:00+00:00", 4),
        (2, "2025-01-05T00:00:00+00:00", 5), RECENT,
    ])


def test_old_rows_are_deleted_in_batches_and_dry_run_changes_nothing(hourly):
    args = ("trim_trackable_data", "testapp.ArticleHourlyData", "--delete-after", "30", "--batch-size", "2", "--json")
    out = StringIO()
    call_command(*args, "--dry-run", stdout=out)
    assert json.loads(out.getvalue()) == [
        {"data_model": "testapp.ArticleHourlyData", "deleted_rows": 5, "into": None, "rolled_rows": 0, "target_rows": 0}
    ]
    assert ArticleHourlyData.objects.count() == 6
    call_command(*args, stdout=StringIO())
    assert hourly_rows() == [RECENT]


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            {"testapp.Nope": {"delete_after_days": 1}},
            "TRACKABLE_RETENTION names 'testapp.Nope', which is not a registered trackable data model.",
        ),
        (
            {"testapp.ArticleTotals": {"delete_after_days": 1}},
            "TRACKABLE_RETENTION names 'testapp.ArticleTotals', which keeps no time series; only time series can be trimmed.",
        ),
        (
            {"testapp.ArticleHourlyData": {"keep": 1}},
            "TRACKABLE_RETENTION['testapp.ArticleHourlyData'] must be a dict with some of the keys delete_after_days, "
            "rollup_after_days, rollup_to; got {'keep': 1}.",
        ),
        (
            {"testapp.ArticleHourlyData": {"delete_after_days": 0}},
            "TRACKABLE_RETENTION['testapp.ArticleHourlyData']['delete_after_days'] is 0; it must be a positive number of days.",
        ),
        (
            {"testapp.ArticleHourlyData": {"rollup_after_days": 3}},
            "TRACKABLE_RETENTION['testapp.ArticleHourlyData'] needs both rollup_after_days and rollup_to, or neither.",
        ),
        (
            {"testapp.ArticleHourlyData": {"rollup_after_days": 3, "rollup_to": "minute"}},
            "TRACKABLE_RETENTION['testapp.ArticleHourlyData']: cannot roll hour buckets up into minute buckets; "
            "choose one of: day, week, month.",
        ),
        (
            {"testapp.ArticleTrackableData": {"rollup_after_days": 3, "rollup_to": "month", "delete_after_days": 3}},
            "TRACKABLE_RETENTION['testapp.ArticleTrackableData']: delete_after_days must be more than rollup_after_days, or rows "
            "are deleted before they are rolled up.",
        ),
        (
            {"testapp.ArticleHourlyData": {"rollup_after_days": 3, "rollup_to": "testapp.ArticleTrackableData"}},
            "TRACKABLE_RETENTION['testapp.ArticleHourlyData']: testapp.ArticleTrackableData lacks the counter fields "
            "reads of testapp.ArticleHourlyData.",
        ),
        (
            {"testapp.ArticleHourlyData": {"rollup_after_days": 3, "rollup_to": "legacyapp.PageDayData"}},
            "TRACKABLE_RETENTION['testapp.ArticleHourlyData']: legacyapp.PageDayData lacks the counter fields reads "
            "of testapp.ArticleHourlyData.",
        ),
        (
            {"legacyapp.PageDayData": {"rollup_after_days": 3, "rollup_to": "legacyapp.PageMinuteData"}},
            "TRACKABLE_RETENTION['legacyapp.PageDayData']: legacyapp.PageMinuteData counts by minute, which is not a coarser "
            "granularity aligned with day (week, month).",
        ),
        (
            {"legacyapp.PageDayData": {"rollup_after_days": 3, "rollup_to": "fortnight"}},
            "TRACKABLE_RETENTION['legacyapp.PageDayData']['rollup_to'] is 'fortnight': name a coarser granularity (week, month) "
            "or a registered time series data model as app_label.ModelName.",
        ),
    ],
)
def test_bad_policies_are_found_by_the_system_check_and_the_command(setting, message):
    with override_settings(TRACKABLE_RETENTION=setting):
        with pytest.raises(ImproperlyConfigured) as err:
            parse_policies()
        assert str(err.value) == message
        errors = [e for e in check_operations() if e.id == "trackable.E010"]
        assert [e.msg for e in errors] == [message]
        with pytest.raises(CommandError) as cmd_err:
            call_command("trim_trackable_data", stdout=StringIO())
        assert str(cmd_err.value) == message


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "TRACKABLE_RETENTION is empty, so there is nothing to trim; set it or give options for one data model."),
        (
            ("testapp.ArticleHourlyData",),
            "TRACKABLE_RETENTION has no policy for 'testapp.articlehourlydata'; add one or give --rollup-after/--delete-after.",
        ),
        (("--delete-after", "3"), "--rollup-after, --rollup-to and --delete-after apply to one data model; name exactly one."),
        (
            ("testapp.ArticleHourlyData", "--delete-after", "3", "--batch-size", "0"),
            "--batch-size must be a positive number of rows, not 0.",
        ),
    ],
)
def test_command_errors(args, message):
    with pytest.raises(CommandError) as err:
        call_command("trim_trackable_data", *args, stdout=StringIO())
    assert str(err.value) == message
