"""The data model's admin a DEBUG user sees: a chart of the listed counts, registered parents only,
one clock, read-only; hourly charts stop at now; the dashboard's broker and windows read right."""
from __future__ import annotations

import importlib
import re
from datetime import datetime, timezone

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.test import override_settings
from django.urls import clear_url_caches, reverse

from tests.testapp.models import Article, ArticleHourlyData, ArticleTrackableData, Gadget
from trackable.admin import register_data_model_admin, unregister_data_model_admin
from trackable.charts import chart_of
from trackable.sites import site
from trackable.status import collect_status

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def add_rows(obj, rows, model=ArticleTrackableData):
    ct = ContentType.objects.get_for_model(type(obj))
    model.objects.bulk_create(model(content_type=ct, object_id=obj.pk, collected_during=t, **v) for t, v in rows.items())


def reload_urls():  # admin URLs are computed when the URLconf is imported
    import tests.urls

    importlib.reload(tests.urls)
    clear_url_caches()


@pytest.fixture
def data_admin(db):
    with override_settings(TRACKABLE_REGISTER_ADMIN=True):
        assert register_data_model_admin(ArticleTrackableData)
        reload_urls()
        try:
            yield reverse("admin:testapp_articletrackabledata_changelist")
        finally:
            unregister_data_model_admin(ArticleTrackableData)
            reload_urls()


@pytest.fixture
def two_articles(db):
    a, b = Article.objects.create(title="A"), Article.objects.create(title="B")
    add_rows(a, {utc(2026, 6, 1): {"impressions": 4}, utc(2026, 6, 3): {"impressions": 2}, utc(2026, 5, 1): {"impressions": 3}})
    add_rows(b, {utc(2026, 6, 1): {"impressions": 5}})
    return a, b


def chart_values(page: str, field: str = "Impressions") -> list[int]:
    """Return the data-values of the change list chart titled '<field> of the listed rows per …'."""
    match = re.search(
        rf'<svg class="trackable-chart".*?<title id="[^"]+">{field} of the listed rows per (\w+)</title>(.*?)</svg>', page, re.S
    )
    assert match, "no change list chart of " + field
    return [int(v) for v in re.findall(r'<circle class="trackable-point"[^>]*data-value="(-?\d+)"', match.group(2))]


pytestmark = pytest.mark.no_broker


def test_changelist_charts_the_listed_rows_with_filters_and_drill_down(admin_client, data_admin, two_articles):
    a, _ = two_articles
    june = admin_client.get(data_admin, {"collected_during__year": "2026", "collected_during__month": "6"}).content.decode()
    assert chart_values(june) == [9, 0, 2]  # June 1st (4 + 5), 2nd (nothing), 3rd
    assert june.index('class="trackable-changelist-charts"') < june.index('id="result_list"')  # above the table
    everything = admin_client.get(data_admin).content.decode()
    assert len(chart_values(everything)) == 34 and sum(chart_values(everything)) == 14  # May 1st .. June 3rd
    one = admin_client.get(data_admin, {"q": str(a.pk), "collected_during__month": "6", "collected_during__year": "2026"})
    assert chart_values(one.content.decode()) == [4, 0, 2]
    assert chart_values(june, "Click throughs") == [0, 0, 0]


def test_changelist_without_rows_draws_no_chart(admin_client, data_admin):
    page = admin_client.get(data_admin).content.decode()
    assert "0 article trackable data" in page and 'class="trackable-changelist-charts"' not in page


def test_parent_type_filter_lists_only_registered_parents(admin_client, data_admin, two_articles):
    site.register(Gadget, ArticleTrackableData)  # a second parent: Django hides a filter with one choice
    try:
        page = admin_client.get(data_admin).content.decode()
    finally:
        site.unregister(Gadget, ArticleTrackableData)
    choices = re.findall(r'href="\?content_type__id__exact=(\d+)"', page)
    cts = ContentType.objects.get_for_models(Article, Gadget)
    assert choices == [str(cts[Article].pk), str(cts[Gadget].pk)]  # by name: "… | article", "… | gadget"
    assert "session" not in page.lower() and "log entry" not in page.lower()


def test_data_model_admin_is_read_only_without_delete(admin_client, data_admin, two_articles):
    row = ArticleTrackableData.objects.first()
    page = admin_client.get(data_admin).content.decode()
    assert 'value="delete_selected"' not in page
    change = admin_client.get(reverse("admin:testapp_articletrackabledata_change", args=[row.pk])).content.decode()
    assert "deletelink" not in change and ">Delete<" not in change
    assert admin_client.get(reverse("admin:testapp_articletrackabledata_delete", args=[row.pk])).status_code == 403
    model_admin = admin.site._registry[ArticleTrackableData]
    assert not model_admin.has_delete_permission(None) and not model_admin.has_change_permission(None)


@override_settings(TIME_ZONE="Europe/Paris")
def test_row_title_uses_the_site_clock_like_the_field(db):
    article = Article.objects.create(title="A")
    add_rows(article, {utc(2026, 11, 15, 23): {"impressions": 1}})
    row = ArticleTrackableData.objects.get()
    ct = ContentType.objects.get_for_model(Article)
    assert str(row) == f"article trackable data of {ct.pk}:{article.pk} during 2026-11-16 00:00 CET"


def test_hourly_chart_stops_at_now(db):
    article = Article.objects.create(title="A")
    add_rows(article, {utc(2026, 5, 1, 9): {"reads": 2}}, model=ArticleHourlyData)
    html = chart_of(article, "reads", days=1, granularity="hour", data_model=ArticleHourlyData, now=utc(2026, 5, 1, 10, 30))
    values = [int(v) for v in re.findall(r'class="trackable-point"[^>]*data-value="(\d+)"', html)]
    assert values == [0] * 9 + [2, 0]  # 00:00 .. 10:00, not the 13 hours still to come


def test_dashboard_windows_read_one_day(admin_client):
    page = admin_client.get(reverse("trackable:dashboard"), {"days": "7"}).content.decode()
    assert '<a href="?days=1">1 day</a>' in page
    assert '<strong aria-current="true">7 days</strong>' in page
    assert "1 days" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, shown",
    [("filesystem://", "filesystem://"), ("amqp://guest:secret@127.0.0.1:1//", "amqp://guest:**@127.0.0.1:1//")],
)
def test_status_shows_the_configured_broker_url_masked(tmp_path, url, shown):
    with override_settings(TRACKABLE_BROKER_URL=url, TRACKABLE_QUEUE_DIR=str(tmp_path), TRACKABLE_CONNECT_TIMEOUT=0.5):
        assert collect_status()["broker"] == shown
