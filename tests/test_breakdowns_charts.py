"""Breakdown charts: horizontal bars (inline SVG) with a table, in a template tag, the admin and the dashboard."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from django.contrib.contenttypes.models import ContentType
from django.template import Context, Template
from django.test import override_settings
from django.urls import reverse

from tests.test_admin import reload_urls
from tests.testapp.models import Story, StoryReferrers
from trackable import charts
from trackable.admin import register_data_model_admin, unregister_data_model_admin
from trackable.breakdowns import ValueEntry
from trackable.models import PageViews, Website

UTC = timezone.utc
NOW = datetime(2026, 3, 12, 15, 0, tzinfo=UTC)

pytestmark = pytest.mark.no_broker


def add(model, obj, day, **values):
    ct = ContentType.objects.get_for_model(type(obj))
    dimension = next(f.name for f in model._meta.concrete_fields if f.name in ("referrer", "path"))
    model.objects.bulk_create(
        model(content_type=ct, object_id=obj.pk, collected_during=day, **{dimension: value, "views": n})
        for value, n in values.items()
    )


def bars(html):
    """Return (value, total) of every bar of the first bar chart in `html`."""
    svg = re.search(r'<svg class="trackable-bars".*?</svg>', html, re.S).group(0)
    return [(v, int(t)) for v, t in re.findall(r'<g class="trackable-bar" data-value="([^"]*)" data-total="(\d+)">', svg)]


def test_bars_are_an_accessible_svg_with_a_table():
    entries = [ValueEntry("google.com", 6, 0.6), ValueEntry("", 3, 0.3), ValueEntry("(other)", 1, 0.1)]
    html = charts.render_breakdown(entries, "Views by referrer", "Referrer")
    assert bars(html) == [("google.com", 6), ("", 3), ("(other)", 1)]
    assert 'role="img"' in html and ">Views by referrer</title>" in html
    assert "<desc" in html and "3 values, total 10; the largest is google.com with 6.</desc>" in html
    assert "<title>(none): 3 (30.0%)</title>" in html  # the empty value is shown as "(none)"
    assert re.search(r'width="([\d.]+)" height="16"', html).group(1) == "310.0"  # the largest bar spans the plot
    table = re.search(r'<table class="trackable-table">.*</table>', html, re.S).group(0)
    assert re.findall(r'<th scope="row">([^<]*)</th><td>(\d+)</td><td>([^<]*)</td>', table) == [
        ("google.com", "6", "60.0%"),
        ("(none)", "3", "30.0%"),
        ("(other)", "1", "10.0%"),
    ]


def test_hostile_values_are_escaped():
    html = charts.render_bars([ValueEntry('<script>alert("x")</script>', 1, 1.0)], "t")
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.django_db
def test_the_template_tag_draws_an_objects_top_referrers(monkeypatch):
    monkeypatch.setattr("trackable.charts.timezone.now", lambda: NOW)  # the clock, injected
    story = Story.objects.create(title="Tides")
    add(StoryReferrers, story, datetime(2026, 3, 11, tzinfo=UTC), **{"google.com": 4, "lobste.rs": 2, "": 1})
    add(StoryReferrers, story, datetime(2026, 3, 1, tzinfo=UTC), **{"old.example": 50})  # outside 7 days
    html = Template('{% load trackable_tags %}{% trackable_breakdown story "referrer" days=7 n=1 %}').render(
        Context({"story": story})
    )
    assert bars(html) == [("google.com", 4), ("(other)", 3)]
    assert "<figcaption>Views of Tides by referrer</figcaption>" in html


@pytest.fixture
def referrers_admin(db):
    with override_settings(TRACKABLE_REGISTER_ADMIN=True):
        register_data_model_admin(StoryReferrers)
        reload_urls()
        try:
            yield reverse("admin:testapp_storyreferrers_changelist")
        finally:
            unregister_data_model_admin(StoryReferrers)
            reload_urls()


def test_the_admin_change_list_of_a_breakdown_shows_bars_and_the_dimension(admin_client, referrers_admin):
    one, two = Story.objects.create(title="one"), Story.objects.create(title="two")
    add(StoryReferrers, one, datetime(2026, 3, 11, tzinfo=UTC), **{"google.com": 4, "bing.com": 1})
    add(StoryReferrers, two, datetime(2026, 3, 11, tzinfo=UTC), **{"bing.com": 2})
    html = admin_client.get(referrers_admin).content.decode()
    assert bars(html) == [("google.com", 4), ("bing.com", 3)]
    assert "Views of the listed rows by referrer" in html
    assert re.search(r'<th scope="col" class="[^"]*column-referrer', html)  # the dimension is a column of the list


@pytest.mark.django_db
def test_the_dashboard_lists_top_paths_and_referrers(admin_client, monkeypatch):
    monkeypatch.setattr("trackable.rollups.timezone.now", lambda: NOW)  # the clock, injected
    story = Story.objects.create(title="one")
    today = NOW.replace(hour=0)
    add(StoryReferrers, story, today, **{"google.com": 4})
    add(PageViews, Website(pk=1), today, **{"/": 9, "/about": 2})
    html = admin_client.get("/trackable/dashboard/?days=1").content.decode()
    assert "Where the visits come from" in html
    charts_html = html.split("Where the visits come from", 1)[1]
    assert "<figcaption>Views of websites by path</figcaption>" in charts_html
    assert "<figcaption>Views of storys by referrer</figcaption>" in charts_html
    assert bars(charts_html.split("by path</figcaption>", 1)[1]) == [("/", 9), ("/about", 2)]


@pytest.mark.django_db
def test_the_parents_admin_page_draws_a_breakdown_as_bars_per_dimension(admin_client, monkeypatch):
    monkeypatch.setattr("trackable.charts.timezone.now", lambda: NOW)  # the clock, injected
    story = Story.objects.create(title="Tides")
    add(StoryReferrers, story, datetime(2026, 3, 11, tzinfo=UTC), **{"google.com": 4, "lobste.rs": 2})
    html = admin_client.get(f"/admin/testapp/story/{story.pk}/change/").content.decode()
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert captions == [
        "Views of Tides per day",
        "Views of Tides by referrer",
        "Views of Tides by terms",
        "Views of Tides by browser",
        "Views of Tides by device",
        "Views of Tides by plan",
    ]
    assert bars(html) == [("google.com", 4), ("lobste.rs", 2)]
