"""manage.py convert_tracking_data: rows copied exactly, idempotent adds, replace, and every bad option."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from io import StringIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.legacyapp.models import Hit, PageView, Visit
from tests.testapp.models import Article, ArticleHourlyData, ArticleTotals, ArticleTrackableData, Video
from trackable.models import ImportedChunk

pytestmark = [pytest.mark.django_db, pytest.mark.no_broker]
UTC = timezone.utc


def convert(*args: str) -> str:
    out = StringIO()
    call_command("convert_tracking_data", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def rows(model=ArticleTrackableData, *fields):
    names = fields or ("impressions", "click_throughs")
    return sorted(
        (r.object_id, r.collected_during.isoformat(), *(getattr(r, f) for f in names)) for r in model.objects.all()
    )


@pytest.fixture
def hits():
    a1, a2 = Article.objects.create(title="one"), Article.objects.create(title="two")
    video = Video.objects.create(title="v")
    article_ct = ContentType.objects.get_for_model(Article)
    Hit.objects.create(content_type=article_ct, object_id=str(a1.pk), day=date(2026, 1, 5), hits=10, clicks=1)
    Hit.objects.create(content_type=article_ct, object_id=str(a1.pk), day=date(2026, 1, 5), hits=5, clicks=0)
    Hit.objects.create(content_type=article_ct, object_id=str(a1.pk), day=date(2026, 1, 6), hits=7, clicks=2)
    Hit.objects.create(content_type=article_ct, object_id=str(a2.pk), day=date(2026, 1, 6), hits=3, clicks=3)
    Hit.objects.create(
        content_type=ContentType.objects.get_for_model(Video), object_id=str(video.pk), day=date(2026, 1, 6), hits=9
    )
    Hit.objects.create(content_type=None, object_id=None, day=date(2026, 1, 6), hits=4)
    Hit.objects.create(content_type=article_ct, object_id=str(a2.pk), day=None, hits=2)
    return a1, a2


HIT_ARGS = ("legacyapp.Hit", "testapp.ArticleTrackableData", "--update-fields", "hits:impressions,clicks:click_throughs",
            "--link-field", "target", "--bucket-field", "day")


def expected_hit_rows(a1, a2, factor=1):
    return sorted([
        (a1.pk, "2026-01-05T00:00:00+00:00", 15 * factor, 1 * factor),
        (a1.pk, "2026-01-06T00:00:00+00:00", 7 * factor, 2 * factor),
        (a2.pk, "2026-01-06T00:00:00+00:00", 3 * factor, 3 * factor),
    ])


def test_generic_relation_hits_become_daily_rows(hits):
    a1, a2 = hits
    out = convert(*HIT_ARGS)
    assert rows() == expected_hit_rows(a1, a2)
    assert "Read 7 source rows" in out
    assert "Counted 7 events (total amount 31) into 3 row updates in 1 chunks." in out
    assert "Skipped 1 source rows: parent testapp.Video is not registered with testapp.ArticleTrackableData." in out
    assert "Skipped 1 source rows: target is empty." in out
    assert "Skipped 1 source rows: day is empty." in out


def test_running_twice_adds_once(hits):
    a1, a2 = hits
    convert(*HIT_ARGS)
    out = convert(*HIT_ARGS)
    assert rows() == expected_hit_rows(a1, a2)
    assert "Skipped 7 source rows already imported by an earlier run." in out
    assert ImportedChunk.objects.count() == 1


def test_interrupted_conversion_resumes_without_double_counting(hits):
    a1, a2 = hits
    convert(*HIT_ARGS, "--max-records", "3", "--chunk-size", "2")
    assert rows() == [(a1.pk, "2026-01-05T00:00:00+00:00", 15, 1), (a1.pk, "2026-01-06T00:00:00+00:00", 7, 2)]
    out = convert(*HIT_ARGS, "--chunk-size", "2")
    assert rows() == expected_hit_rows(a1, a2)
    assert "Skipped 3 source rows already imported by an earlier run." in out
    assert "Skipped 1 source rows: parent testapp.Video is not registered with testapp.ArticleTrackableData." in out
    assert sorted(ImportedChunk.objects.values_list("start", "end")) == [(0, 2), (2, 3), (3, 4), (4, 6), (6, 7)]


def test_adding_keeps_what_is_there_and_replace_overwrites_only_mapped_counters(hits):
    a1, a2 = hits
    ct = ContentType.objects.get_for_model(Article)
    day5 = datetime(2026, 1, 5, tzinfo=UTC)
    ArticleTrackableData.objects.create(
        content_type=ct, object_id=a1.pk, collected_during=day5, impressions=100, click_throughs=50
    )
    convert(*HIT_ARGS)
    assert rows()[0] == (a1.pk, "2026-01-05T00:00:00+00:00", 115, 51)
    replace = ("legacyapp.Hit", "testapp.ArticleTrackableData", "--update-fields", "hits:impressions",
               "--link-field", "target", "--bucket-field", "day", "--mode", "replace")
    for _ in range(2):
        out = convert(*replace)
        assert rows() == sorted([
            (a1.pk, "2026-01-05T00:00:00+00:00", 15, 51),
            (a1.pk, "2026-01-06T00:00:00+00:00", 7, 2),
            (a2.pk, "2026-01-06T00:00:00+00:00", 3, 3),
        ])
    assert "(mode replace)" in out


def test_dry_run_writes_nothing(hits):
    out = convert(*HIT_ARGS, "--dry-run")
    assert ArticleTrackableData.objects.count() == 0
    assert ImportedChunk.objects.count() == 0
    assert "Would count 7 events (total amount 31) into 3 row updates in 1 chunks." in out


def test_a_date_is_local_midnight_of_the_bucket_zone(hits):
    a1, a2 = hits
    with override_settings(TIME_ZONE="Europe/Paris"):
        convert(*HIT_ARGS)
    assert rows() == sorted([
        (a1.pk, "2026-01-04T23:00:00+00:00", 15, 1),
        (a1.pk, "2026-01-05T23:00:00+00:00", 7, 2),
        (a2.pk, "2026-01-05T23:00:00+00:00", 3, 3),
    ])


def test_foreign_key_link_and_datetime_bucket_fill_hourly_rows():
    article = Article.objects.create(title="a")
    for minute, views in ((5, 1), (59, 2), (61, 4)):
        PageView.objects.create(
            article=article,
            viewed_at=datetime(2026, 3, 1, 10, tzinfo=UTC).replace(minute=minute % 60, hour=10 + minute // 60),
            views=views,
        )
    convert(
        "legacyapp.PageView",
        "testapp.ArticleHourlyData",
        "--fields",
        "views:reads",
        "--link-field",
        "article",
        "--bucket-field",
        "viewed_at",
    )
    assert rows(ArticleHourlyData, "reads") == [
        (article.pk, "2026-03-01T10:00:00+00:00", 3),
        (article.pk, "2026-03-01T11:00:00+00:00", 4),
    ]


def test_match_spec_and_counting_rows_into_totals():
    article = Article.objects.create(title="Hello")
    for _ in range(3):
        PageView.objects.create(title="Hello", views=5)
    PageView.objects.create(title="Nobody", views=5)
    out = convert(
        "legacyapp.PageView", "testapp.ArticleTotals", "--update-fields", "1:downloads", "--match-spec", "title:testapp.Article"
    )
    assert list(ArticleTotals.objects.values_list("object_id", "downloads")) == [(article.pk, 3)]
    assert "Skipped 1 source rows: no Article matches --match-spec." in out


def test_dotted_link_field_follows_two_foreign_keys():
    article = Article.objects.create(title="a")
    view = PageView.objects.create(article=article, viewed_at=datetime(2026, 3, 1, 10, 30, tzinfo=UTC))
    Visit.objects.bulk_create([Visit(page_view=view, seconds=s) for s in (10, 20, 0)])
    convert(
        "legacyapp.Visit",
        "testapp.ArticleHourlyData",
        "--update-fields",
        "seconds:reads",
        "--link-field",
        "page_view.article",
        "--key-fields",
        "page_view.viewed_at:collected_during",
    )
    assert rows(ArticleHourlyData, "reads") == [(article.pk, "2026-03-01T10:00:00+00:00", 30)]


def test_conversion_is_batched_not_one_query_per_row(django_assert_max_num_queries):
    article = Article.objects.create(title="a")
    PageView.objects.bulk_create(
        [PageView(article=article, viewed_at=datetime(2026, 3, 1, h % 24, tzinfo=UTC)) for h in range(200)]
    )
    with django_assert_max_num_queries(12):
        convert(
            "legacyapp.PageView",
            "testapp.ArticleHourlyData",
            "--fields",
            "views:reads",
            "--link-field",
            "article",
            "--bucket-field",
            "viewed_at",
        )
    assert sum(ArticleHourlyData.objects.values_list("reads", flat=True)) == 200
    assert ArticleHourlyData.objects.count() == 24


def test_json_summary(hits):
    summary = json.loads(convert(*HIT_ARGS, "--json"))
    assert (summary["mode"], summary["lines"], summary["events"], summary["rows"]) == ("add", 7, 7, 3)


def test_ambiguous_match_is_an_error():
    Article.objects.create(title="Twin")
    Article.objects.create(title="Twin")
    PageView.objects.create(title="Twin")
    with pytest.raises(CommandError) as err:
        convert(
            "legacyapp.PageView",
            "testapp.ArticleTotals",
            "--update-fields",
            "1:downloads",
            "--match-spec",
            "title:testapp.Article:title",
        )
    assert str(err.value) == "--match-spec is ambiguous: 2 Article rows have title='Twin'; match on an attribute that is unique."


BASE = ("legacyapp.Hit", "testapp.ArticleTrackableData")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("legacyapp.Nope", "testapp.ArticleTrackableData", "--fields", "hits:impressions"),
            "Unknown model 'legacyapp.Nope': name it as app_label.ModelName.",
        ),
        (
            ("legacyapp.Hit", "testapp.Article", "--fields", "hits:impressions", "--link-field", "target"),
            "testapp.Article is not a registered trackable data model; registered data models: testapp.ArticleHourlyData, "
            "testapp.ArticleTotals, testapp.ArticleTrackableData, testapp.GuideClients, testapp.GuideData, "
            "testapp.GuideReferrers, testapp.GuideSearches, testapp.PageData, testapp.PlayerTrackableData, "
            "testapp.PlayerVisitData, testapp.StoryClients, testapp.StoryData, testapp.StoryReferrers, "
            "testapp.StorySearches, testapp.VideoTrackableData, trackable.PageViews.",
        ),
        (
            BASE + ("--link-field", "target"),
            "Give --update-fields source:dest pairs (e.g. --update-fields hits:impressions) to say which counters to copy.",
        ),
        (
            BASE + ("--fields", "hits=impressions"),
            "--update-fields takes source:dest pairs separated by commas (e.g. hits:impressions); got 'hits=impressions'.",
        ),
        (
            BASE + ("--fields", "views:impressions", "--link-field", "target", "--bucket-field", "day"),
            "Hit has no field 'views' (in --update-fields 'views').",
        ),
        (
            BASE + ("--fields", "hits:reads", "--link-field", "target", "--bucket-field", "day"),
            "'reads' is not a counter field of ArticleTrackableData; its counter fields are: impressions, click_throughs.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--bucket-field", "day"),
            "Give --link-field (the path from a source row to its parent object, e.g. page or hit.page) or --match-spec "
            "(source_attr:app_label.Model[:parent_attr]) to say how a source row finds its parent.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "target", "--match-spec", "x:testapp.Article"),
            "Give either --link-field or --match-spec, not both.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "day", "--bucket-field", "day"),
            "--link-field 'day' ends at Hit.day, which is not a foreign key or generic foreign key to a parent object.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "day.year", "--bucket-field", "day"),
            "Hit.day is not a foreign key, so --link-field 'day.year' cannot follow it.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "target"),
            "ArticleTrackableData keeps a time series; give --bucket-field naming the date or datetime field of Hit that "
            "says when the counts happened.",
        ),
        (
            (
                "legacyapp.PageView",
                "testapp.ArticleTotals",
                "--fields",
                "views:downloads",
                "--link-field",
                "article",
                "--bucket-field",
                "viewed_at",
            ),
            "ArticleTotals keeps no time series, so --bucket-field does not apply; leave it out.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "target", "--bucket-field", "hits"),
            "--bucket-field 'hits' is a PositiveIntegerField, not a DateField or DateTimeField.",
        ),
        (
            (
                "legacyapp.PageView",
                "testapp.VideoTrackableData",
                "--fields",
                "views:plays",
                "--link-field",
                "article",
                "--bucket-field",
                "viewed_at",
            ),
            "Article is not registered with VideoTrackableData; register it in trackables.py or convert into a data "
            "model of Article.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--match-spec", "title", "--bucket-field", "day"),
            "--match-spec takes source_attr:app_label.Model[:parent_attr]; got 'title'.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--match-spec", "object_id:testapp.Article:slug", "--bucket-field", "day"),
            "Article has no field 'slug' (in --match-spec 'object_id:testapp.Article:slug').",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "target", "--key-fields", "day:when"),
            "--key-fields only maps one source date or datetime field to collected_during (the bucket); use --bucket-field.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "target", "--bucket-field", "day", "--max-records", "0"),
            "--max-records must be a positive number of rows, not 0.",
        ),
        (
            BASE + ("--fields", "hits:impressions", "--link-field", "target", "--bucket-field", "day", "--order-by", "nope"),
            "--order-by 'nope' does not fit Hit: Cannot resolve keyword 'nope' into field. Choices are: clicks, content_type, "
            "content_type_id, day, hits, id, object_id, ratio, target",
        ),
    ],
)
def test_bad_options_are_command_errors(args, message):
    with pytest.raises(CommandError) as err:
        convert(*args)
    assert str(err.value) == message


def test_a_fractional_count_is_an_error(hits):
    Hit.objects.update(ratio=0.5)
    with pytest.raises(CommandError) as err:
        convert(
            "legacyapp.Hit",
            "testapp.ArticleTrackableData",
            "--fields",
            "ratio:impressions",
            "--link-field",
            "target",
            "--bucket-field",
            "day",
        )
    assert str(err.value) == "Source field 'ratio' holds 0.5, which is not a whole number of events."
