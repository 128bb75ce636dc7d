"""The query API: exact series (zero-filled, rolled up across DST changes), totals, top-N, annotations."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import override_settings

from tests.testapp.models import (
    Article,
    ArticleHourlyData,
    ArticleTotals,
    ArticleTrackableData,
    Player,
    PlayerTrackableData,
    Video,
    VideoTrackableData,
)
from trackable import query
from trackable.buckets import bucket_start
from trackable.messaging import process_messages, send_increment_message
from trackable.query import Point, QueryError, TopEntry

# MySQL and MariaDB refuse LIMIT inside an IN subquery, so top_objects() ranks in a query of its own there.
TOP_OBJECTS_QUERIES = 2 if connection.vendor == "mysql" else 1

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)


def add_rows(model, obj, rows: dict[datetime, dict[str, int]]) -> None:
    ct = ContentType.objects.get_for_model(type(obj))
    model.objects.bulk_create(model(content_type=ct, object_id=obj.pk, collected_during=t, **v) for t, v in rows.items())


def hourly(first: datetime, hours: int, value: int = 1) -> dict[datetime, dict[str, int]]:
    return {first + timedelta(hours=i): {"reads": value} for i in range(hours)}


@pytest.fixture
def article(db):
    return Article.objects.create(title="A")



# -- series ------------------------------------------------------------------------------------------


def test_series_at_the_model_granularity_fills_empty_buckets_with_zeros(article, django_assert_num_queries):
    add_rows(ArticleTrackableData, article, {utc(2026, 5, 2): {"impressions": 7}, utc(2026, 5, 4): {"impressions": 3}})
    with django_assert_num_queries(1):
        points = query.series(article, "impressions", utc(2026, 5, 1), utc(2026, 5, 6))
    assert points == [
        Point(utc(2026, 5, 1), 0),
        Point(utc(2026, 5, 2), 7),
        Point(utc(2026, 5, 3), 0),
        Point(utc(2026, 5, 4), 3),
        Point(utc(2026, 5, 5), 0),
    ]


def test_series_counts_only_the_object_and_the_window(article):
    other = Article.objects.create(title="B")
    add_rows(ArticleTrackableData, article, {utc(2026, 4, 30): {"impressions": 100}, utc(2026, 5, 1): {"impressions": 1}})
    add_rows(ArticleTrackableData, other, {utc(2026, 5, 1): {"impressions": 50}})
    assert query.series(article, "impressions", utc(2026, 5, 1), utc(2026, 5, 2)) == [Point(utc(2026, 5, 1), 1)]


@override_settings(TRACKABLE_TIME_ZONE="Europe/Paris")
def test_hourly_rows_roll_up_to_paris_days_of_25_and_23_hours(article, django_assert_num_queries):
    # Autumn: 2026-10-25 lasts 25 hours in Paris; spring: 2026-03-29 lasts 23.
    add_rows(ArticleHourlyData, article, hourly(utc(2026, 10, 24, 12), 49))
    add_rows(ArticleHourlyData, article, hourly(utc(2026, 3, 28, 23), 23, value=2))
    with django_assert_num_queries(1):
        autumn = query.series(article, "reads", paris(2026, 10, 24), paris(2026, 10, 27), granularity="day")
    assert autumn == [Point(paris(2026, 10, 24), 10), Point(paris(2026, 10, 25), 25), Point(paris(2026, 10, 26), 14)]
    spring = query.series(article, "reads", paris(2026, 3, 28), paris(2026, 3, 31), granularity="day")
    assert spring == [Point(paris(2026, 3, 28), 0), Point(paris(2026, 3, 29), 46), Point(paris(2026, 3, 30), 0)]


@override_settings(TRACKABLE_TIME_ZONE="Europe/Paris")
def test_hour_series_keeps_both_two_oclock_hours_of_the_fall_back_night(article):
    add_rows(ArticleHourlyData, article, {utc(2026, 10, 25, 0): {"reads": 4}, utc(2026, 10, 25, 1): {"reads": 6}})
    points = query.series(article, "reads", paris(2026, 10, 25, 1), paris(2026, 10, 25, 4))
    assert points == [
        Point(paris(2026, 10, 25, 1), 0),
        Point(paris(2026, 10, 25, 2), 4),
        Point(paris(2026, 10, 25, 2, fold=1), 6),
        Point(paris(2026, 10, 25, 3), 0),
    ]
    assert [p.start.utcoffset() for p in points[1:3]] == [timedelta(hours=2), timedelta(hours=1)]


@override_settings(TRACKABLE_TIME_ZONE="Europe/Paris")
def test_minute_rows_roll_up_to_hours_in_sql_without_merging_the_repeated_hour(db, django_assert_num_queries):
    video = Video.objects.create(title="V")
    add_rows(
        VideoTrackableData,
        video,
        {utc(2026, 10, 25, 0, 10): {"plays": 1}, utc(2026, 10, 25, 0, 50): {"plays": 2}, utc(2026, 10, 25, 1, 30): {"plays": 5}},
    )
    with django_assert_num_queries(1):
        points = query.series(video, "plays", utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), granularity="hour")
    assert points == [Point(paris(2026, 10, 25, 2), 3), Point(paris(2026, 10, 25, 2, fold=1), 5)]


@override_settings(TRACKABLE_TIME_ZONE="Europe/Paris")
def test_days_roll_up_to_iso_weeks_months_and_years(article):
    add_rows(
        ArticleTrackableData,
        article,
        {
            paris(2026, 3, 29): {"impressions": 1},  # Sunday: ISO week of Monday 23 March
            paris(2026, 3, 30): {"impressions": 2},  # Monday: next week, still March
            paris(2026, 4, 1): {"impressions": 4},
            paris(2027, 1, 1): {"impressions": 8},
        },
    )
    weeks = query.series(article, "impressions", paris(2026, 3, 25), paris(2026, 4, 6), granularity="week")
    assert weeks == [Point(paris(2026, 3, 23), 1), Point(paris(2026, 3, 30), 6)]
    months = query.series(article, "impressions", paris(2026, 2, 1), paris(2026, 5, 1), granularity="month")
    assert months == [Point(paris(2026, 2, 1), 0), Point(paris(2026, 3, 1), 3), Point(paris(2026, 4, 1), 4)]
    years = query.series(article, "impressions", paris(2026, 1, 1), paris(2028, 1, 1), granularity="year")
    assert years == [Point(paris(2026, 1, 1), 7), Point(paris(2027, 1, 1), 8)]


def test_series_in_a_given_zone_cuts_days_at_its_midnights(article):
    add_rows(ArticleHourlyData, article, hourly(utc(2026, 7, 1, 20), 8))  # 20:00-03:00 UTC = 22:00-05:00 Paris
    points = query.series(article, "reads", paris(2026, 7, 1), paris(2026, 7, 3), granularity="day", tz="Europe/Paris")
    assert points == [Point(paris(2026, 7, 1), 2), Point(paris(2026, 7, 2), 6)]
    assert points[0].start.tzinfo == PARIS


def test_series_of_uuid_and_string_parents(db):
    video = Video.objects.create(id=uuid.UUID(int=5), title="V")
    player = Player.objects.create(handle="ada")
    add_rows(VideoTrackableData, video, {utc(2026, 1, 1, 0, 1): {"plays": 3}})
    add_rows(PlayerTrackableData, player, {utc(2026, 1, 1): {"quests": 2}})
    assert query.series(video, "plays", utc(2026, 1, 1), utc(2026, 1, 1, 0, 3)) == [
        Point(utc(2026, 1, 1, 0, 0), 0),
        Point(utc(2026, 1, 1, 0, 1), 3),
        Point(utc(2026, 1, 1, 0, 2), 0),
    ]
    assert query.series(player, "quests", utc(2026, 1, 1), utc(2026, 1, 2)) == [Point(utc(2026, 1, 1), 2)]


# -- totals, top-N, annotations ------------------------------------------------------------------------


def test_totals_over_a_window_and_all_time(article, django_assert_num_queries):
    add_rows(
        ArticleTrackableData,
        article,
        {utc(2026, 5, 1): {"impressions": 5, "click_throughs": 1}, utc(2026, 5, 9): {"impressions": 7, "click_throughs": 2}},
    )
    with django_assert_num_queries(1):
        assert query.totals(article, ["impressions", "click_throughs"], utc(2026, 5, 1), utc(2026, 5, 9)) == {
            "impressions": 5,
            "click_throughs": 1,
        }
    with django_assert_num_queries(1):
        assert query.total(article, "impressions") == 12
    assert query.total(article, "impressions", start=utc(2026, 5, 2)) == 7
    assert query.total(Article.objects.create(title="none"), "impressions") == 0


def test_total_of_an_all_time_data_model(article):
    ArticleTotals.objects.create(content_type=ContentType.objects.get_for_model(Article), object_id=article.pk, downloads=9)
    assert query.total(article, "downloads") == 9


def test_top_ranks_parents_by_their_total_in_the_window(db, django_assert_num_queries):
    a, b, c = (Article.objects.create(title=t) for t in "abc")
    add_rows(ArticleTrackableData, a, {utc(2026, 5, 1): {"impressions": 5}, utc(2026, 6, 1): {"impressions": 100}})
    add_rows(ArticleTrackableData, b, {utc(2026, 5, 1): {"impressions": 3}, utc(2026, 5, 2): {"impressions": 4}})
    add_rows(ArticleTrackableData, c, {utc(2026, 5, 3): {"impressions": 1}})
    with django_assert_num_queries(1):
        ranked = query.top(Article, "impressions", utc(2026, 5, 1), utc(2026, 6, 1), n=2)
    assert ranked == [TopEntry(b.pk, 7), TopEntry(a.pk, 5)]
    with django_assert_num_queries(TOP_OBJECTS_QUERIES):
        objects = query.top_objects(Article, "impressions", utc(2026, 5, 1), utc(2026, 6, 1), n=2)
    assert [(o, o.trackable_total) for o in objects] == [(b, 7), (a, 5)]


def test_top_objects_of_string_parents(db):
    ada, bob = Player.objects.create(handle="ada"), Player.objects.create(handle="bob")
    add_rows(PlayerTrackableData, ada, {utc(2026, 1, 1): {"quests": 1}})
    add_rows(PlayerTrackableData, bob, {utc(2026, 1, 1): {"quests": 4}})
    assert [(p.pk, p.trackable_total) for p in query.top_objects(Player.objects.all(), "quests")] == [("bob", 4), ("ada", 1)]


def test_annotate_total_orders_a_queryset_including_parents_without_rows(db, django_assert_num_queries):
    a, b, c = (Article.objects.create(title=t) for t in "abc")
    add_rows(ArticleTrackableData, a, {utc(2026, 5, 1): {"impressions": 2}})
    add_rows(ArticleTrackableData, b, {utc(2026, 5, 1): {"impressions": 9}, utc(2020, 1, 1): {"impressions": 50}})
    qs = query.annotate_total(Article.objects.all(), "impressions", utc(2026, 1, 1), utc(2027, 1, 1), name="views")
    with django_assert_num_queries(1):
        assert [(x.title, x.views) for x in qs.order_by("-views", "title")] == [("b", 9), ("a", 2), ("c", 0)]
    assert list(qs.filter(views__gte=2).order_by("title").values_list("title", flat=True)) == ["a", "b"]


def test_video_annotation_with_uuid_keys(db):
    v = Video.objects.create(title="V")
    add_rows(VideoTrackableData, v, {utc(2026, 1, 1): {"plays": 3}})
    assert query.annotate_total(Video.objects.all(), "plays").get().trackable_total == 3


@pytest.mark.broker
def test_end_to_end_from_send_increment_message(article):
    for _ in range(3):
        send_increment_message(None, article, "impressions")
    process_messages()
    today = bucket_start(datetime.now(UTC), "day")
    assert query.series(article, "impressions", today, today + timedelta(days=1)) == [Point(today, 3)]


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda a: query.series(a, "likes", utc(2026, 1, 1), utc(2026, 1, 2)),
            "'likes' is not a counter field of ArticleTrackableData or ArticleHourlyData or ArticleTotals; "
            "the counter fields are: click_throughs, downloads, impressions, reads.",
        ),
        (
            lambda a: query.series(a, "impressions", utc(2026, 1, 2), utc(2026, 1, 1)),
            "The window ends (2026-01-01T00:00:00+00:00) before it starts (2026-01-02T00:00:00+00:00); swap them.",
        ),
        (
            lambda a: query.series(a, "impressions", utc(2026, 1, 1), utc(2026, 1, 2), granularity="fortnight"),
            "Unknown granularity 'fortnight'; choose one of minute, hour, day, week, month, year.",
        ),
        (
            lambda a: query.series(a, "impressions", utc(2026, 1, 1), utc(2026, 1, 2), granularity="hour"),
            "ArticleTrackableData counts per day, so it cannot be split into hours; choose day, week, month, year.",
        ),
        (
            lambda a: query.series(a, "impressions", datetime(2026, 1, 1), utc(2026, 1, 2)),
            "start is a naive datetime (2026-01-01 00:00); give it a time zone.",
        ),
        (
            lambda a: query.series(a, "impressions", utc(2026, 1, 1), utc(2026, 1, 2), tz="Mars/Olympus"),
            "Unknown time zone 'Mars/Olympus'; give an IANA zone name such as 'Europe/Paris'.",
        ),
        (
            lambda a: query.series(a, "impressions", utc(2026, 1, 1), utc(2026, 1, 2), tz="Europe/Paris"),
            "ArticleTrackableData counts per day cut in UTC; its buckets cannot be regrouped in Europe/Paris. "
            "Query it without tz=, or count in a finer data model.",
        ),
        (
            lambda a: query.series(a, "downloads", utc(2026, 1, 1), utc(2026, 1, 2)),
            "ArticleTotals keeps one all-time row per parent, so it has no series; use total().",
        ),
        (
            lambda a: query.total(a, "downloads", utc(2026, 1, 1), utc(2026, 1, 2)),
            "ArticleTotals keeps one all-time row per parent, so it cannot be queried for a window.",
        ),
        (
            lambda a: query.totals(a, ["impressions", "reads"]),
            "The fields impressions, reads live in several data models (ArticleHourlyData, ArticleTrackableData); "
            "total them separately.",
        ),
        (lambda a: query.top(Article, "impressions", n=0), "n must be an integer from 1 to 1000, not 0."),
        (
            lambda a: query.series(a, "reads", utc(2000, 1, 1), utc(2030, 1, 1)),
            "That window holds more than 100000 hours; choose a coarser granularity.",
        ),
    ],
)
def test_bad_arguments_raise_a_sentence_naming_the_fix(article, call, message, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(QueryError) as caught:
        call(article)
    assert str(caught.value) == message


def test_unsaved_and_unregistered_objects(db):
    with pytest.raises(QueryError, match="^Cannot query counts of an unsaved Article: it has no primary key.$"):
        query.total(Article(title="x"), "impressions")
    with pytest.raises(QueryError, match="The model ContentType is not registered with trackable"):
        query.total(ContentType.objects.first(), "impressions")


@override_settings(TRACKABLE_TIME_ZONE="Europe/Paris")
def test_last_buckets_are_whole_local_buckets_across_a_clock_change():
    now = paris(2026, 3, 30, 9, 15)
    assert query.last_buckets(3, "day", now=now) == (paris(2026, 3, 28), paris(2026, 3, 31))
    assert query.last_buckets(1, "month", now=now) == (paris(2026, 3, 1), paris(2026, 4, 1))
    # The two 02:00 hours of the fall-back night (ambiguous local times compare by UTC, per PEP 495).
    assert query.last_buckets(2, "hour", now=paris(2026, 10, 25, 2, 30, fold=1)) == (utc(2026, 10, 25, 0), utc(2026, 10, 25, 2))
    with pytest.raises(QueryError, match="^Ask for at least one bucket, not 0.$"):
        query.last_buckets(0, "day")


def test_model_totals_sum_every_parent_in_one_query(db, django_assert_num_queries):
    a, b = Article.objects.create(title="a"), Article.objects.create(title="b")
    add_rows(ArticleTrackableData, a, {utc(2026, 5, 1): {"impressions": 2, "click_throughs": 1}})
    add_rows(ArticleTrackableData, b, {utc(2026, 5, 2): {"impressions": 5}, utc(2026, 6, 2): {"impressions": 50}})
    with django_assert_num_queries(1):
        sums = query.model_totals(Article, ["impressions", "click_throughs"], utc(2026, 5, 1), utc(2026, 6, 1))
    assert sums == {"impressions": 7, "click_throughs": 1}


def test_top_objects_of_a_filtered_queryset_rank_among_its_own(db, django_assert_num_queries):
    a, b, c = (Article.objects.create(title=t) for t in ("keep a", "drop b", "keep c"))
    add_rows(ArticleTrackableData, a, {utc(2026, 5, 1): {"impressions": 1}})
    add_rows(ArticleTrackableData, b, {utc(2026, 5, 1): {"impressions": 100}})
    add_rows(ArticleTrackableData, c, {utc(2026, 5, 1): {"impressions": 5}})
    with django_assert_num_queries(TOP_OBJECTS_QUERIES):
        objects = query.top_objects(Article.objects.filter(title__startswith="keep"), "impressions", n=2)
    assert [(o.title, o.trackable_total) for o in objects] == [("keep c", 5), ("keep a", 1)]
