"""Unique visitors in the JSON/CSV API, in roll-ups, and in the system checks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import override_settings
from django.test.utils import isolate_apps
from django.urls import reverse
from django.utils import timezone as dj_timezone

import trackable
from tests.testapp.models import Page, PageData
from trackable import retention, sketches, uniques
from trackable.checks import _check_unique_field, check_setting_values, check_uniques
from trackable.retention import parse_policies, trim

pytestmark = [pytest.mark.django_db, pytest.mark.no_broker]
UTC = timezone.utc
DAY = datetime(2026, 3, 10, tzinfo=UTC)


def hashes(first: int, last: int) -> list[str]:
    return [f"{i:016x}" for i in range(first, last)]


def store(page: Page, day: datetime, visitors: list[str], views: int | None = None) -> PageData:
    ct = ContentType.objects.get_for_model(Page)
    return PageData.objects.create(
        content_type=ct, object_id=page.pk, collected_during=day, views=views or len(visitors),
        visitors=sketches.new_sketch(visitors).serialize_compact(),
    )


@pytest.fixture
def page():
    page = Page.objects.create(path="/p")
    store(page, DAY, hashes(0, 30))
    store(page, DAY + timedelta(days=1), hashes(20, 60))  # 10 of yesterday's hashes again
    return page


def api(client, name: str, *args, **params):
    url = reverse(f"trackable:{name}", args=args) + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    with override_settings(TRACKABLE_API_PERMISSION="trackable.api.allow_any"):
        return client.get(url)


def test_series_of_uniques_with_bounds_and_the_salt_note(client, page):
    answer = api(client, "api-series", "testapp.page", page.pk, field="visitors", start="2026-03-10", end="2026-03-13").json()
    assert answer["points"] == [
        ["2026-03-10T00:00:00+00:00", 30, 30, 30],
        ["2026-03-11T00:00:00+00:00", 40, 40, 40],
        ["2026-03-12T00:00:00+00:00", 0, 0, 0],
    ]
    assert (answer["total"], answer["lower"], answer["upper"], answer["confidence"]) == (60, 60, 60, 0.95)
    assert answer["deduplicated_within"] == "1 day"
    assert answer["note"] == (
        "Visitors are told apart within 1 day only (the salt of their hash changes then): a visitor seen in "
        "several of those periods of this window counts once in each."
    )


def test_one_day_needs_no_salt_note(client, page):
    answer = api(client, "api-series", "testapp.page", page.pk, field="visitors", start="2026-03-10", end="2026-03-11").json()
    assert (answer["total"], answer["deduplicated_within"], "note" in answer) == (30, None, False)


def test_totals_put_uniques_next_to_counts(client, page):
    answer = api(
        client, "api-totals", "testapp.page", page.pk, fields="views,visitors", start="2026-03-10", end="2026-03-12"
    ).json()
    assert answer["totals"] == {"views": 70}
    assert answer["uniques"] == {"visitors": {"estimate": 60, "lower": 60, "upper": 60}}
    csv = api(client, "api-totals", "testapp.page", page.pk, fields="views,visitors", format="csv").content.decode()
    assert csv == "field,total,lower,upper\nviews,70,70,70\nvisitors,60,60,60\n"


def test_top_by_uniques_in_json_and_csv(client, page):
    other = Page.objects.create(path="/q")
    store(other, DAY, hashes(100, 105))
    answer = api(client, "api-top", "testapp.page", field="visitors", start="2026-03-10", end="2026-03-12").json()
    assert answer["top"] == [{"pk": page.pk, "total": 60, "lower": 60, "upper": 60},
                             {"pk": other.pk, "total": 5, "lower": 5, "upper": 5}]
    csv = api(client, "api-top", "testapp.page", field="visitors", start="2026-03-10", end="2026-03-12", format="csv")
    assert csv.content.decode() == f"pk,visitors,lower,upper\n{page.pk},60,60,60\n{other.pk},5,5,5\n"


def test_rollups_union_sketches_and_keep_the_window_answer(page, monkeypatch):
    now = datetime(2026, 9, 1, tzinfo=UTC)
    monkeypatch.setattr(retention, "clock", lambda: now)
    before = uniques.uniques(page, "visitors")
    [policy] = parse_policies({"testapp.PageData": {"rollup_after_days": 30, "rollup_to": "month"}})
    result = trim(policy, now=now)
    assert result.rolled_rows == 2
    [row] = PageData.objects.all()
    assert (row.collected_during, row.views) == (datetime(2026, 3, 1, tzinfo=UTC), 70)
    assert uniques.uniques(page, "visitors") == before == sketches.Estimate(60, 60, 60)
    assert trim(policy, now=now).rolled_rows == 0


def test_the_last_30_days_recipe(page):
    end = DAY + timedelta(days=2)
    people = uniques.uniques(page, "visitors", end - timedelta(days=30), end)
    assert people.estimate == 60


# -- checks -----------------------------------------------------------------------------------------


@override_settings(TRACKABLE_VISITOR_IDENTITY="ip", TRACKABLE_VISITOR_SALT_ROTATION=86400)
def test_bad_visitor_settings_are_reported():
    errors = [e for e in check_setting_values() if "VISITOR" in e.msg]
    assert {e.id for e in errors} == {"trackable.E021"}
    assert [e.msg for e in errors] == [
        "TRACKABLE_VISITOR_IDENTITY is 'ip'; it must be one of 'request', 'session', 'user'.",
        "TRACKABLE_VISITOR_SALT_ROTATION is 86400; it must be one of 'hour', 'day', 'week', 'month', 'never'.",
    ]


@isolate_apps("tests.testapp")
def test_misdeclared_unique_fields_are_reported():
    class AllTime(trackable.TrackableData):
        hits = models.PositiveIntegerField(default=0)
        people = trackable.UniqueVisitors(of=["clicks"], lg_k=30)

        class Meta(trackable.TrackableData.Meta):
            app_label = "testapp"

    errors = _check_unique_field(AllTime, AllTime._meta.get_field("people"))
    assert [(e.id, e.msg) for e in errors] == [
        ("trackable.E040", "testapp.AllTime.people is a UniqueVisitors field on a data model without buckets."),
        ("trackable.E040", "testapp.AllTime.people counts the visitors of 'clicks', which are not counter fields of AllTime."),
        ("trackable.E040", "testapp.AllTime.people has lg_k=30, outside 4–21."),
    ]


def test_the_test_project_passes_the_checks():
    assert check_uniques() == []


def test_the_field_deconstructs_for_migrations():
    field = PageData._meta.get_field("sharers")
    name, path, args, kwargs = field.deconstruct()
    assert (path, kwargs) == ("trackable.fields.UniqueVisitors", {"of": ["shares"]})


# -- dashboard and admin charts -----------------------------------------------------------------------


def test_the_dashboard_shows_uniques_next_to_counts(page):
    from trackable.dashboard import build_sections

    [section] = [s for s in build_sections(DAY, DAY + timedelta(days=2)) if s.data_model == "page data"]
    by_field = {c.field: c for c in section.counters}
    assert (by_field["views"].total, by_field["visitors"].total) == (70, 60)
    assert by_field["visitors"].label == "visitors (unique, ±3.2%)"
    assert by_field["visitors"].top == [(str(page), None, 60)]


def test_admin_charts_chart_uniques_per_day():
    from trackable.buckets import bucket_start
    from trackable.charts import chart_of

    page = Page.objects.create(path="/now")
    today = bucket_start(dj_timezone.now(), "day")
    store(page, today, hashes(0, 7), views=11)
    html = chart_of(page, "visitors", days=2)
    assert "Visitors of Page object" in html and "<td>7</td>" in html
    assert "<td>11</td>" in chart_of(page, "views", days=2)
