"""Site-wide page counting: PageViewMiddleware counts successful GETs by path into trackable.PageViews."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.helpers import fold
from trackable.apps import register_page_views
from trackable.middleware import MIDDLEWARE_PATH, excluded_prefixes, website
from trackable.models import PageViews, Website
from trackable.query import total
from trackable.sites import TrackableSite

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def counting(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, MIDDLEWARE_PATH]


def page_counts():
    return dict(PageViews.objects.values_list("path", "views"))


def test_every_successful_get_is_counted_by_path(client, counting):
    for url in ["/pages/home/", "/pages/home", "/pages/home/?utm_source=x", "/pages/about/", "/articles/3/"]:
        client.get(url, follow=True)
    client.post("/pages/home/")  # not a GET
    client.get("/nowhere/")  # a 404
    client.get("/admin/")  # the admin (a redirect to its login page, itself excluded)
    client.get("/static/app.css")  # STATIC_URL
    fold()
    assert page_counts() == {"/pages/home": 3, "/pages/about": 1, "/articles/3": 1}
    assert PageViews.objects.get(path="/pages/home").object_id == 1
    assert total(website(), "views") == 5  # row 1 by pk (the test run flushes the table itself)


def test_the_migration_creates_the_website_row():
    call_command("migrate", "trackable", "0004", verbosity=0)  # the test run's flushes removed the row: migrate anew
    call_command("migrate", "trackable", verbosity=0)
    assert list(Website.objects.values_list("pk", "name")) == [(1, "This site")]


def test_spiders_are_counted_apart(client, counting, settings):
    settings.TRACKABLE_USER_AGENT_FILTERING = True
    client.get("/pages/home/", HTTP_USER_AGENT="Googlebot/2.1 (+http://www.google.com/bot.html)")
    client.get("/pages/home/", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
    fold()
    assert list(PageViews.objects.values_list("path", "views", "spider_views")) == [("/pages/home", 1, 1)]


def test_excluded_prefixes_follow_the_setting(client, counting, settings):
    assert excluded_prefixes() == ("/favicon.ico", "/static/", "/admin/")
    settings.TRACKABLE_PAGE_VIEWS_EXCLUDE = ["/pages/a"]
    for url in ["/pages/about/", "/pages/b/", "/static/x.css"]:
        client.get(url)
    fold()
    assert page_counts() == {"/pages/b": 1, "/static/x.css": 1}


def test_the_app_registers_page_views_when_the_middleware_is_installed(settings, monkeypatch):
    fresh = TrackableSite()
    monkeypatch.setattr("trackable.sites.site", fresh)
    register_page_views()
    assert not fresh.is_registered(Website)
    settings.MIDDLEWARE = [MIDDLEWARE_PATH]
    register_page_views()
    register_page_views()  # idempotent
    assert fresh.get_data_models(Website) == [PageViews]


def test_a_send_that_fails_never_breaks_the_page(client, counting, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("trackable.messaging.send_increment_message", broken)
    response = client.get("/pages/home/")
    assert (response.status_code, response.content) == (200, b"page home")
    assert "Could not count the page view of /pages/home/." in caplog.text
