"""Breakdowns from access logs (import_access_log) and through retention (trim_trackable_data)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import override_settings

from tests.testapp.models import Story, StoryClients, StoryData, StoryReferrers, StorySearches
from trackable.retention import parse_policies, trim

pytestmark = [pytest.mark.django_db, pytest.mark.no_broker]

UTC = timezone.utc
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)


def line(path, referrer="-", agent=FIREFOX, ts="10/Jan/2026:10:15:00 +0000"):
    return f'203.0.113.9 - - [{ts}] "GET {path} HTTP/1.1" 200 512 "{referrer}" "{agent}"\n'


LOG = "".join([
    line("/stories/1/", "https://www.google.com/search?q=Tide+Tables"),
    line("/stories/1/", "https://shop.example/"),
    line("/stories/1/?plan=pro", agent=IPHONE),
    line("/stories/2/", "https://lobste.rs/", ts="11/Jan/2026:08:00:00 +0000"),
    line("/stories/2/", "https://lobste.rs/", agent="Googlebot/2.1 (+http://www.google.com/bot.html)"),
])


@override_settings(
    ROOT_URLCONF="tests.importurls",
    ALLOWED_HOSTS=["shop.example"],
    TRACKABLE_IMPORT_URLS={"story": "testapp.Story.views"},
    TRACKABLE_USER_AGENT_FILTERING=True,
)
def test_an_access_log_fills_the_breakdowns_from_its_referrers_and_user_agents(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(LOG)
    out = StringIO()
    call_command("import_access_log", str(log), stdout=out, stderr=StringIO())
    assert "Counted 4 events (total amount 4)" in out.getvalue()
    jan10, jan11 = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC)
    assert sorted(StoryData.objects.values_list("object_id", "collected_during", "views")) == [(1, jan10, 3), (2, jan11, 1)]
    assert sorted(StoryReferrers.objects.values_list("object_id", "collected_during", "referrer", "views")) == [
        (1, jan10, "", 1),
        (1, jan10, "(internal)", 1),
        (1, jan10, "google.com", 1),
        (2, jan11, "lobste.rs", 1),
    ]
    assert sorted(StorySearches.objects.values_list("object_id", "terms", "views")) == [
        (1, "", 2), (1, "tide tables", 1), (2, "", 1),
    ]
    assert sorted(StoryClients.objects.values_list("object_id", "collected_during", "browser", "device", "plan", "views")) == [
        (1, jan10 + timedelta(hours=10), "Firefox", "desktop", "", 2),
        (1, jan10 + timedelta(hours=10), "Mobile Safari", "mobile", "pro", 1),
        (2, jan11 + timedelta(hours=8), "Firefox", "desktop", "", 1),
    ]
    # Importing again adds nothing, to the breakdowns either.
    call_command("import_access_log", str(log), stdout=StringIO(), stderr=StringIO())
    assert sum(StoryReferrers.objects.values_list("views", flat=True)) == 4


@override_settings(ROOT_URLCONF="tests.importurls", TRACKABLE_IMPORT_URLS={"story": "testapp.Story.views"},
                   TRACKABLE_BREAKDOWN_MAX_VALUES=2)
def test_an_import_keeps_the_cap_on_distinct_values(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("".join(line("/stories/1/", f"https://site{i}.example/") for i in range(5)))
    call_command("import_access_log", str(log), stdout=StringIO(), stderr=StringIO())
    assert sorted(StoryReferrers.objects.values_list("referrer", "views")) == [
        ("(other)", 3), ("site0.example", 1), ("site1.example", 1),
    ]


def test_trim_rolls_a_breakdown_up_per_value():
    story = Story.objects.create(title="A")
    ct = ContentType.objects.get_for_model(Story)
    rows = [
        (datetime(2025, 1, 10, tzinfo=UTC), "google.com", 2),
        (datetime(2025, 1, 11, tzinfo=UTC), "google.com", 3),
        (datetime(2025, 1, 11, tzinfo=UTC), "bing.com", 1),
        (datetime(2025, 2, 3, tzinfo=UTC), "bing.com", 4),
        (datetime(2025, 6, 1, tzinfo=UTC), "google.com", 7),  # recent: kept as it is
    ]
    StoryReferrers.objects.bulk_create(
        StoryReferrers(content_type=ct, object_id=story.pk, collected_during=t, referrer=r, views=n) for t, r, n in rows
    )
    [policy] = parse_policies({"testapp.StoryReferrers": {"rollup_after_days": 30, "rollup_to": "month"}})
    result = trim(policy, now=datetime(2025, 6, 15, tzinfo=UTC))
    assert result.rolled_rows == 4
    assert sorted(StoryReferrers.objects.values_list("collected_during", "referrer", "views")) == [
        (datetime(2025, 1, 1, tzinfo=UTC), "bing.com", 1),
        (datetime(2025, 1, 1, tzinfo=UTC), "google.com", 5),
        (datetime(2025, 2, 1, tzinfo=UTC), "bing.com", 4),
        (datetime(2025, 6, 1, tzinfo=UTC), "google.com", 7),
    ]


@override_settings(TRACKABLE_BREAKDOWN_MAX_VALUES=2)
def test_a_rolled_up_bucket_keeps_the_cap_on_distinct_values():
    story, other = Story.objects.create(title="A"), Story.objects.create(title="B")
    ct = ContentType.objects.get_for_model(Story)
    day = datetime(2025, 1, 10, tzinfo=UTC)
    rows = [  # each day within the cap of 2; the month would hold 4 values
        (story, day, "google.com", 5),
        (story, day, "bing.com", 1),
        (story, day + timedelta(days=1), "site1.example", 3),
        (story, day + timedelta(days=1), "(other)", 2),  # a day that was capped already
        (story, day + timedelta(days=2), "site2.example", 2),
        (story, day + timedelta(days=2), "google.com", 1),
        (other, day, "bing.com", 4),  # another object has a cap of its own
    ]
    StoryReferrers.objects.bulk_create(
        StoryReferrers(content_type=ct, object_id=o.pk, collected_during=t, referrer=r, views=n) for o, t, r, n in rows
    )
    [policy] = parse_policies({"testapp.StoryReferrers": {"rollup_after_days": 30, "rollup_to": "month"}})
    result = trim(policy, now=datetime(2025, 6, 15, tzinfo=UTC))
    assert result.rolled_rows == 7
    january = datetime(2025, 1, 1, tzinfo=UTC)
    assert sorted(StoryReferrers.objects.values_list("object_id", "collected_during", "referrer", "views")) == [
        (story.pk, january, "(other)", 5),  # bing.com 1, site2.example 2 and the day's (other) 2
        (story.pk, january, "google.com", 6),  # the largest values keep their rows
        (story.pk, january, "site1.example", 3),
        (other.pk, january, "bing.com", 4),
    ]
    # A second run over a month that already holds its two values sends every new one to "(other)".
    StoryReferrers.objects.create(content_type=ct, object_id=story.pk, collected_during=day, referrer="new.example", views=9)
    trim(policy, now=datetime(2025, 6, 15, tzinfo=UTC))
    assert sorted(StoryReferrers.objects.filter(object_id=story.pk).values_list("referrer", "views")) == [
        ("(other)", 14), ("google.com", 6), ("site1.example", 3),
    ]


def test_import_events_takes_dimension_values_from_columns_named_like_them(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text(
        "timestamp,object,field,amount,referrer,terms\n"
        "2026-01-10T10:00:00Z,testapp.Story:1,views,3,news.example,tide tables\n"
        "2026-01-10T11:00:00Z,testapp.Story:1,views,2,news.example,\n"
        "2026-01-10T12:00:00Z,testapp.Story:1,shares,1,news.example,x\n"
    )
    out = StringIO()
    call_command("import_events", str(events), stdout=out, stderr=StringIO())
    assert "Counted 3 events (total amount 6)" in out.getvalue()
    assert list(StoryData.objects.values_list("views", "shares")) == [(5, 1)]
    assert list(StoryReferrers.objects.values_list("referrer", "views")) == [("news.example", 5)]
    assert sorted(StorySearches.objects.values_list("terms", "views")) == [("", 2), ("tide tables", 3)]
    assert sorted(StoryClients.objects.values_list("browser", "device", "plan", "views")) == [  # hourly rows
        ("", "", "", 2), ("", "", "", 3),
    ]
