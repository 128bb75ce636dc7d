"""Headless Chromium draws the chart above a data model's admin change list (filters applied).

Chromium and chromedriver are required: without them this fails, it never skips.
"""
from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.test_admin import add_rows, reload_urls, utc
from tests.test_browser import ARTIFACTS, browser, log_in  # noqa: F401 - the browser fixture
from tests.testapp.models import Article, ArticleTrackableData
from trackable.admin import register_data_model_admin, unregister_data_model_admin

pytestmark = pytest.mark.no_broker


@pytest.fixture
def data_admin_live(transactional_db):
    with override_settings(TRACKABLE_REGISTER_ADMIN=True):
        register_data_model_admin(ArticleTrackableData)
        reload_urls()
        try:
            yield reverse("admin:testapp_articletrackabledata_changelist")
        finally:
            unregister_data_model_admin(ArticleTrackableData)
            reload_urls()


def test_changelist_chart_is_drawn_above_the_table(browser, live_server, django_user_model, data_admin_live):  # noqa: F811
    a, b = Article.objects.create(title="A"), Article.objects.create(title="B")
    add_rows(a, {utc(2026, 6, 1): {"impressions": 4}, utc(2026, 6, 3): {"impressions": 2}, utc(2026, 5, 1): {"impressions": 3}})
    add_rows(b, {utc(2026, 6, 1): {"impressions": 5}, utc(2026, 6, 2): {"impressions": 7}})
    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}{data_admin_live}?collected_during__year=2026&collected_during__month=6")

    chart = browser.find_element("css selector", ".trackable-changelist-charts svg.trackable-chart")
    points = chart.find_elements("css selector", "circle.trackable-point")
    assert [int(p.get_attribute("data-value")) for p in points] == [9, 7, 2]
    assert chart.size["width"] > 300 and chart.size["height"] > 100  # laid out, not just in the markup
    heights = [p.location["y"] for p in points]
    assert heights.index(min(heights)) == 0  # the highest count (9) is drawn highest
    table = browser.find_element("id", "result_list")
    assert chart.location["y"] + chart.size["height"] <= table.location["y"]  # above the rows
    title_id = chart.get_attribute("aria-labelledby").split()[0]
    assert browser.find_element("id", title_id).get_attribute("textContent") == "Impressions of the listed rows per day"

    # The date drill-down narrows the chart like the rows: June 2nd only.
    browser.get(f"{live_server.url}{data_admin_live}?collected_during__year=2026&collected_during__month=6&collected_during__day=2")
    chart = browser.find_element("css selector", ".trackable-changelist-charts svg.trackable-chart")
    assert [int(p.get_attribute("data-value")) for p in chart.find_elements("css selector", "circle.trackable-point")] == [7]
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "admin-changelist-chart.png"))
