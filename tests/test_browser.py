"""A real browser (headless Chromium) draws the admin chart and sends the beacon of a tracked link.

Chromium and chromedriver are required: without them these tests fail, they never skip.
"""
from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType

from tests.testapp.models import Article, ArticleTrackableData
from trackable import query
from trackable.buckets import bucket_start
from trackable.messaging import process_messages

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "_static" / "admin-chart.png"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1280,1000",
)
# Deterministic values for the 14 days of the chart, oldest first (today is the last one).
VALUES = [3, 5, 4, 8, 12, 9, 7, 15, 18, 14, 11, 20, 16, 6]


@pytest.fixture
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            pytest.fail(f"{path} is missing; install it with: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def log_in(browser, live_server, django_user_model) -> None:
    django_user_model.objects.create_superuser("root", "root@example.com", "s3cret-pw")
    browser.get(live_server.url + "/admin/login/?next=/admin/")
    browser.find_element("name", "username").send_keys("root")
    browser.find_element("name", "password").send_keys("s3cret-pw")
    browser.find_element("css selector", "input[type=submit]").click()
    browser.find_element("id", "user-tools")  # waits for the logged-in admin index


def test_admin_draws_the_chart_of_an_article(browser, live_server, django_user_model, transactional_db):
    article = Article.objects.create(title="Tides of the North Sea")
    today = bucket_start(datetime.now(timezone.utc), "day")
    ct = ContentType.objects.get_for_model(Article)
    ArticleTrackableData.objects.bulk_create(
        ArticleTrackableData(
            content_type=ct, object_id=article.pk, collected_during=today - timedelta(days=13 - i), impressions=v
        )
        for i, v in enumerate(VALUES)
    )
    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}/admin/testapp/article/{article.pk}/change/")

    chart = browser.find_element("css selector", "svg.trackable-chart")
    points = chart.find_elements("css selector", "circle.trackable-point")
    assert len(points) == 14
    assert [int(p.get_attribute("data-value")) for p in points] == VALUES
    # Drawn, not just present: the chart has a laid-out size and the highest point sits highest.
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    heights = [p.location["y"] for p in points]
    assert heights.index(min(heights)) == VALUES.index(max(VALUES))
    title_id = chart.get_attribute("aria-labelledby").split()[0]
    assert browser.find_element("id", title_id).get_attribute("textContent") == "Impressions of Tides of the North Sea per day"
    assert chart.get_attribute("role") == "img"
    assert len(browser.find_elements("css selector", "table.trackable-table")) == 2  # the fallback tables

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "admin-change-page.png"))
    row = browser.find_element("css selector", ".field-trackable_charts")
    browser.execute_script("arguments[0].scrollIntoView(); window.scrollBy(0, -20);", row)
    assert row.screenshot(str(ARTIFACTS / "admin-chart.png"))
    if os.environ.get("TRACKABLE_UPDATE_DOCS_SCREENSHOT"):  # refresh the docs' picture on purpose only
        shutil.copyfile(ARTIFACTS / "admin-chart.png", DOCS_SCREENSHOT)


@pytest.mark.urls("tests.browser_urls")
def test_clicking_a_tracked_link_sends_its_beacon_once(browser, live_server, transactional_db):
    article = Article.objects.create(title="Tides")
    browser.get(f"{live_server.url}/page/{article.pk}/")
    browser.find_element("id", "go").click()
    assert browser.find_element("id", "landed").text == "Landed"
    deadline = time.monotonic() + 10
    counted = 0
    while time.monotonic() < deadline and counted == 0:
        process_messages()
        counted = query.total(article, "click_throughs")
        time.sleep(0.2)
    assert counted == 1
    browser.get(f"{live_server.url}/page/{article.pk}/")  # loading the page again counts nothing
    process_messages()
    assert query.total(article, "click_throughs") == 1
