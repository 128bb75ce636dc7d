"""Headless Chromium draws a breakdown's horizontal bars above its admin change list.

Chromium and chromedriver are required: without them this fails, it never skips.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import override_settings
from django.urls import reverse

from tests.test_admin import reload_urls
from tests.test_browser import ARTIFACTS, browser, log_in  # noqa: F401 - the browser fixture
from tests.testapp.models import Story, StoryReferrers
from trackable.admin import register_data_model_admin, unregister_data_model_admin

pytestmark = pytest.mark.no_broker


@pytest.fixture
def referrers_admin_live(transactional_db):
    with override_settings(TRACKABLE_REGISTER_ADMIN=True):
        register_data_model_admin(StoryReferrers)
        reload_urls()
        try:
            yield reverse("admin:testapp_storyreferrers_changelist")
        finally:
            unregister_data_model_admin(StoryReferrers)
            reload_urls()


def test_the_bars_of_a_breakdown_are_drawn_longest_first(browser, live_server, django_user_model, referrers_admin_live):  # noqa: F811
    story = Story.objects.create(title="Tides")
    ct = ContentType.objects.get_for_model(Story)
    day = datetime(2026, 6, 1, tzinfo=timezone.utc)
    StoryReferrers.objects.bulk_create(
        StoryReferrers(content_type=ct, object_id=story.pk, collected_during=day, referrer=r, views=n)
        for r, n in [("google.com", 12), ("lobste.rs", 5), ("", 3), ("<b>bold</b>.example", 1)]
    )
    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}{referrers_admin_live}")

    chart = browser.find_element("css selector", "svg.trackable-bars")
    bars = chart.find_elements("css selector", "g.trackable-bar")
    assert [(b.get_attribute("data-value"), int(b.get_attribute("data-total"))) for b in bars] == [
        ("google.com", 12), ("lobste.rs", 5), ("", 3), ("<b>bold</b>.example", 1),
    ]
    widths = [b.find_element("css selector", "rect").size["width"] for b in bars]
    assert widths == sorted(widths, reverse=True)
    assert [round(w / widths[0] * 12, 1) for w in widths] == [12, 5, 3, 1]  # drawn to scale
    tops = [b.find_element("css selector", "rect").location["y"] for b in bars]
    assert tops == sorted(tops)  # one under the other, largest on top
    title_id = chart.get_attribute("aria-labelledby").split()[0]
    assert browser.find_element("id", title_id).get_attribute("textContent") == "Views of the listed rows by referrer"
    assert chart.get_attribute("role") == "img"
    table = browser.find_element("id", "result_list")
    assert chart.location["y"] + chart.size["height"] <= table.location["y"]  # above the rows
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "admin-breakdown-bars.png"))
