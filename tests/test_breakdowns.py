"""Breakdowns: one send counts in the totals and in every breakdown, exactly once, with bounded values."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models
from django.test.client import RequestFactory
from django.test.utils import isolate_apps

import trackable
from tests.helpers import drain_dead_letters, fold, publish_raw
from tests.testapp.models import Story, StoryClients, StoryData, StoryReferrers, StorySearches
from trackable import messages, messaging, relay
from trackable.fields import OTHER
from trackable.messaging import send_increment_message, send_message
from trackable.sites import TrackableSite

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TS = int(NOON.timestamp() * 1000)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)


def counts(model, *dimensions, field="views"):
    """Return {dimension values: total} over every row of a breakdown."""
    out: dict = {}
    for *values, n in model.objects.values_list(*dimensions, field):
        key = values[0] if len(values) == 1 else tuple(values)
        out[key] = out.get(key, 0) + n
    return {k: v for k, v in out.items() if v}


def visit(referrer=None, agent=FIREFOX, path="/stories/1/", **extra):
    meta = {"HTTP_USER_AGENT": agent, **extra}
    if referrer:
        meta["HTTP_REFERER"] = referrer
    return RequestFactory().get(path, **meta)


def test_one_send_counts_in_the_totals_and_in_every_breakdown():
    story = Story.objects.create(title="A")
    for _ in range(3):
        send_increment_message(visit("https://www.google.com/search?q=Django++Tracking&hl=en"), story, "views")
    hacker_news = visit("https://news.ycombinator.com/item?id=1", agent=IPHONE, path="/stories/1/?plan=pro")
    send_increment_message(hacker_news, story, "views")
    send_increment_message(visit(), story, "views")
    send_increment_message(visit("http://testserver/"), story, "views")  # the site's own page
    send_increment_message(visit("https://example.org/a"), story, "shares")  # no breakdown counts shares

    result = fold()

    assert result.malformed == 0
    assert counts(StoryData, "object_id") == {story.pk: 6}
    assert counts(StoryData, "object_id", field="shares") == {story.pk: 1}
    assert counts(StoryReferrers, "referrer") == {"google.com": 3, "news.ycombinator.com": 1, "": 1, "(internal)": 1}
    assert counts(StorySearches, "terms") == {"django tracking": 3, "": 3}
    assert counts(StoryClients, "browser", "device", "plan") == {
        ("Firefox", "desktop", ""): 5,
        ("Mobile Safari", "mobile", "pro"): 1,
    }


def test_explicit_dimensions_count_without_a_request():
    story = Story.objects.create(title="B")
    send_increment_message(None, story, "views", 2, dimensions={"referrer": "Example.com ", "terms": "a\x00b"})
    send_message(None, story, {"views": 1}, dimensions={"referrer": "x" * 500})
    fold()
    assert counts(StoryReferrers, "referrer") == {"Example.com": 2, "x" * 200: 1}
    assert counts(StorySearches, "terms") == {"a b": 2, "": 1}
    assert counts(StoryClients, "browser") == {"": 3}


def test_an_unknown_explicit_dimension_is_refused_before_anything_is_sent():
    story = Story.objects.create(title="C")
    with pytest.raises(ValueError) as err:
        send_increment_message(None, story, "views", dimensions={"referer": "example.com"})
    assert str(err.value) == (
        "dimensions= names 'referer', which no breakdown of Story counting these fields has; "
        "its dimensions are: browser, device, plan, referrer, terms."
    )
    assert fold().events == 0


@pytest.fixture
def noon(monkeypatch):
    """Date every send at NOON: the cap is per bucket, so a test must not straddle a midnight."""
    monkeypatch.setattr(messaging, "clock", lambda: NOON.timestamp())


@pytest.mark.usefixtures("noon")
def test_values_beyond_the_cap_are_counted_under_other_and_totals_stay_exact(settings):
    settings.TRACKABLE_BREAKDOWN_MAX_VALUES = 3
    story = Story.objects.create(title="D")
    for i, n in enumerate([5, 1, 4, 2, 3, 1]):
        send_increment_message(None, story, "views", n, dimensions={"referrer": f"site{i}.example"})
    fold()
    # The largest amounts of the batch take the three places; the rest share "(other)".
    assert counts(StoryReferrers, "referrer") == {"site0.example": 5, "site2.example": 4, "site4.example": 3, OTHER: 4}

    send_increment_message(None, story, "views", 7, dimensions={"referrer": "late.example"})
    send_increment_message(None, story, "views", 1, dimensions={"referrer": "site2.example"})
    fold()
    assert counts(StoryReferrers, "referrer") == {"site0.example": 5, "site2.example": 5, "site4.example": 3, OTHER: 11}
    assert sum(counts(StoryReferrers, "referrer").values()) == counts(StoryData, "object_id")[story.pk] == 24
    # A field's own max_values wins over the setting: StoryClients.device keeps 3.
    for device in ["a", "b", "c", "d", "e"]:
        send_increment_message(None, story, "views", dimensions={"device": device})
    fold()
    assert counts(StoryClients, "device") == {"": 24, "a": 1, "b": 1, OTHER: 3}


def test_the_cap_holds_per_object_and_per_bucket(settings):
    settings.TRACKABLE_BREAKDOWN_MAX_VALUES = 1
    one, two = Story.objects.create(title="E"), Story.objects.create(title="F")
    events = [
        ["testapp.storyreferrers", "testapp.story", one.pk, "views", 1, TS, {"d": {"referrer": "a"}}],
        ["testapp.storyreferrers", "testapp.story", one.pk, "views", 1, TS, {"d": {"referrer": "b"}}],
        ["testapp.storyreferrers", "testapp.story", two.pk, "views", 1, TS, {"d": {"referrer": "b"}}],
        ["testapp.storyreferrers", "testapp.story", one.pk, "views", 2, TS + 86_400_000, {"d": {"referrer": "b"}}],
    ]
    publish_raw(messages.build(events), "testapp.storyreferrers")
    fold()
    rows = sorted(StoryReferrers.objects.values_list("object_id", "collected_during", "referrer", "views"))
    day1, day2 = NOON.replace(hour=0), datetime(2026, 3, 11, tzinfo=UTC)
    assert rows == sorted([(one.pk, day1, "a", 1), (one.pk, day1, OTHER, 1), (two.pk, day1, "b", 1), (one.pk, day2, "b", 2)])


def test_two_folding_workers_keep_the_cap_and_the_totals(settings):
    settings.TRACKABLE_BREAKDOWN_MAX_VALUES = 5
    story = Story.objects.create(title="G")
    for m in range(40):
        events = [
            ["testapp.storyreferrers", "testapp.story", story.pk, "views", 1, TS, {"d": {"referrer": f"r{m}-{i}"}}]
            for i in range(3)
        ]
        publish_raw(messages.build(events), "testapp.storyreferrers")
    results = []

    def worker():
        try:
            results.append(fold(batch_size=4))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(r.events for r in results) == 120
    found = counts(StoryReferrers, "referrer")
    assert sum(found.values()) == 120
    assert len([v for v in found if v != OTHER]) == 5
    assert found[OTHER] == 115


@pytest.mark.parametrize(
    "extras, reason",
    [
        ({"d": {"referrer": 7}}, "event 0: dimension referrer is not a string but int"),
        ({"d": {"referrer": "a\x00b"}}, "event 0: dimension referrer holds a NUL character"),
        ({"d": {"referrer": "x" * 1001}}, "event 0: dimension referrer holds 1001 characters, over 1000"),
        ({"d": {"referrer": "x" * 201}}, "dimension referrer holds 201 characters, over testapp.StoryReferrers.referrer's 200"),
        ({"d": {"referer": "x"}}, "referer is not a Dimension field of testapp.StoryReferrers"),
        ({"d": {}}, "event 0: dimensions are not an object of 1 to 8 values"),
        ({"d": ["x"]}, "event 0: dimensions are not an object of 1 to 8 values"),
        ({"d": {"bad name": "x"}}, "event 0: dimension 'bad name' is not a field name"),
    ],
)
def test_hostile_dimension_values_off_the_queue_are_dead_lettered_with_a_reason(extras, reason):
    story = Story.objects.create(title="H")
    good = ["testapp.storyreferrers", "testapp.story", story.pk, "views", 1, TS, {"d": {"referrer": "ok"}}]
    hostile = ["testapp.storyreferrers", "testapp.story", story.pk, "views", 1, TS, extras]
    publish_raw(messages.build([hostile]), "testapp.storyreferrers")
    publish_raw(messages.build([good]), "testapp.storyreferrers")
    result = fold()
    assert (result.messages, result.malformed) == (1, 1)
    dead = drain_dead_letters()
    assert [headers["x-trackable-error"] for _, headers in dead] == [reason]
    assert counts(StoryReferrers, "referrer") == {"ok": 1}


def test_dimensions_sent_to_a_plain_data_model_are_malformed():
    story = Story.objects.create(title="I")
    event = ["testapp.storydata", "testapp.story", story.pk, "views", 1, TS, {"d": {"referrer": "x"}}]
    publish_raw(messages.build([event]), "testapp.storydata")
    assert fold().malformed == 1
    assert [h["x-trackable-error"] for _, h in drain_dead_letters()] == [
        "dimensions sent to testapp.StoryData, which has no Dimension fields"
    ]


def test_an_old_producers_six_item_event_folds_under_the_empty_value():
    story = Story.objects.create(title="J")
    publish_raw(messages.build([["testapp.storyreferrers", "testapp.story", story.pk, "views", 2, TS]]), "testapp.storyreferrers")
    assert fold().malformed == 0
    assert counts(StoryReferrers, "referrer") == {"": 2}


def test_a_redelivered_message_is_counted_once():
    story = Story.objects.create(title="K")
    body = messages.build([["testapp.storyreferrers", "testapp.story", story.pk, "views", 3, TS, {"d": {"referrer": "a"}}]])
    publish_raw(body, "testapp.storyreferrers")
    publish_raw(body, "testapp.storyreferrers")
    result = fold()
    assert (result.messages, result.duplicates) == (1, 1)
    assert counts(StoryReferrers, "referrer") == {"a": 3}


def test_the_relay_sums_equal_values_and_keeps_different_ones_apart():
    events = [
        ["testapp.storyreferrers", "testapp.story", 1, "views", 1, TS, {"d": {"referrer": "a"}}],
        ["testapp.storyreferrers", "testapp.story", 1, "views", 2, TS + 1000, {"d": {"referrer": "a"}}],
        ["testapp.storyreferrers", "testapp.story", 1, "views", 4, TS + 2000, {"d": {"referrer": "b"}}],
        ["testapp.storydata", "testapp.story", 1, "views", 7, TS],
    ]
    batch = relay.batch_messages("seg", 0, 100, events)
    assert sorted(e for _, _, chunk in batch for e in chunk) == sorted([
        ("testapp.storyreferrers", "testapp.story", 1, "views", 3, TS, {"d": {"referrer": "a"}}),
        ("testapp.storyreferrers", "testapp.story", 1, "views", 4, TS + 2000, {"d": {"referrer": "b"}}),
        ("testapp.storydata", "testapp.story", 1, "views", 7, TS),
    ], key=str)


def test_a_spider_counts_apart_where_the_breakdown_says_so(settings):
    settings.TRACKABLE_USER_AGENT_FILTERING = True
    story = Story.objects.create(title="L")
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    send_increment_message(visit("https://bing.com/search?q=x", agent=bot), story, "views")
    send_increment_message(visit("https://bing.com/search?q=x"), story, "views")
    fold()
    assert counts(StoryReferrers, "referrer") == {"bing.com": 1}
    assert counts(StoryReferrers, "referrer", field="spider_views") == {"bing.com": 1}
    assert counts(StorySearches, "terms") == {"x": 1}  # no spider field: the spider is not counted
    assert counts(StoryData, "object_id") == {story.pk: 1}


def test_the_request_path_makes_no_query(django_assert_num_queries):
    story = Story.objects.create(title="M")
    request = visit("https://duckduckgo.com/?q=hello", agent=IPHONE)
    send_increment_message(request, story, "views")  # warms the parser cache and the routes
    with django_assert_num_queries(0):
        send_increment_message(request, story, "views")


def test_a_view_counts_an_objects_referrers_and_search_terms(client):
    story = Story.objects.create(title="N")
    client.get(f"/stories/{story.pk}/", HTTP_REFERER="https://www.bing.com/search?q=local+news", HTTP_USER_AGENT=FIREFOX)
    client.get(f"/stories/{story.pk}/", HTTP_REFERER="https://www.bing.com/search?q=Local%20News", HTTP_USER_AGENT=IPHONE)
    client.get(f"/stories/{story.pk}/", HTTP_REFERER="https://lobste.rs/", HTTP_USER_AGENT=FIREFOX)
    fold()
    assert counts(StoryReferrers, "referrer") == {"bing.com": 2, "lobste.rs": 1}
    assert counts(StorySearches, "terms") == {"local news": 2, "": 1}
    assert counts(StoryClients, "device") == {"desktop": 2, "mobile": 1}


@pytest.mark.no_broker
@isolate_apps("tests.testapp")
def test_a_breakdown_that_cannot_work_is_refused_at_registration():
    class TotalsByReferrer(trackable.TrackableData):
        referrer = trackable.Dimension("referrer_host")
        views = models.PositiveIntegerField(default=0)

        class Meta(trackable.TrackableData.Meta):
            app_label = "testapp"

    class BadSource(trackable.TrackableTimeSeriesData):
        referrer = trackable.Dimension("referer")
        views = models.PositiveIntegerField(default=0)

        class Meta(trackable.TrackableTimeSeriesData.Meta):
            app_label = "testapp"

    class WithVisitors(trackable.TrackableTimeSeriesData):
        referrer = trackable.Dimension("referrer_host")
        views = models.PositiveIntegerField(default=0)
        visitors = trackable.UniqueVisitors()

        class Meta(trackable.TrackableTimeSeriesData.Meta):
            app_label = "testapp"

    class NoSource(trackable.TrackableTimeSeriesData):
        referrer = trackable.Dimension()
        views = models.PositiveIntegerField(default=0)

        class Meta(trackable.TrackableTimeSeriesData.Meta):
            app_label = "testapp"

    class TooLong(trackable.TrackableTimeSeriesData):
        referrer = trackable.Dimension("referrer", max_length=2000)
        views = models.PositiveIntegerField(default=0)

        class Meta(trackable.TrackableTimeSeriesData.Meta):
            app_label = "testapp"

    registry = TrackableSite()
    expected = {
        TooLong: "TooLong.referrer has max_length=2000; a dimension holds 1 to 1000 characters (the most an event carries).",
        TotalsByReferrer: "The data model TotalsByReferrer has Dimension fields but keeps no time series; "
        "breakdowns subclass trackable.TrackableTimeSeriesData.",
        BadSource: "BadSource.referrer: 'referer' is not a breakdown source; use one of browser, device, language, path, "
        "platform, referrer, referrer_host, search_terms, utm_campaign, utm_medium, utm_source or a callable(request) -> "
        "str | None.",
        WithVisitors: "The breakdown WithVisitors has UniqueVisitors fields; count visitors in a plain data model.",
        NoSource: "NoSource.referrer has no source; declare e.g. trackable.Dimension(\"referrer_host\").",
    }
    for model, message in expected.items():
        with pytest.raises(ImproperlyConfigured) as err:
            registry.register(Story, model)
        assert str(err.value) == message


@pytest.mark.no_broker
def test_a_breakdowns_dimensions_join_its_unique_key():
    [constraint] = StoryClients._meta.constraints
    assert (constraint.name, constraint.fields) == (
        "testapp_storyclients_bucket",
        ("content_type", "object_id", "collected_during", "browser", "device", "plan"),
    )
    assert [c.fields for c in StoryData._meta.constraints] == [("content_type", "object_id", "collected_during")]


@pytest.mark.no_broker
def test_a_counter_routes_to_its_data_model_then_every_breakdown_with_it():
    from trackable.models import PageViews, Website

    site = trackable.site
    assert [r.data_model for r in site.routes(Story, "views")] == [StoryData, StoryReferrers, StorySearches, StoryClients]
    assert [r.data_model for r in site.routes(Story, "views", StoryData)] == [
        StoryData, StoryReferrers, StorySearches, StoryClients,
    ]
    assert [r.data_model for r in site.routes(Story, "views", StorySearches)] == [StorySearches]
    assert [r.data_model for r in site.routes(Story, "shares")] == [StoryData]
    assert [r.data_model for r in site.routes(Website, "views")] == [PageViews]  # breakdowns only
    assert site.route(Story, "views").data_model is StoryData  # never ambiguous
    assert [name for name, _, _ in site.routes(Story, "views")[3].dimensions] == ["browser", "device", "plan"]


@pytest.mark.usefixtures("direct_publish")
def test_publishing_from_the_request_carries_the_values_too():
    story = Story.objects.create(title="O")
    send_increment_message(visit("https://duckduckgo.com/?q=Tides"), story, "views")
    send_increment_message(None, story, "views", dimensions={"referrer": "newsletter.example"})
    fold()
    assert counts(StoryReferrers, "referrer") == {"duckduckgo.com": 1, "newsletter.example": 1}
    assert counts(StorySearches, "terms") == {"tides": 1, "": 1}


@pytest.mark.no_broker
def test_the_wire_format_carries_dimension_values_and_still_reads_six_item_events():
    body = messages.build([
        ["testapp.storyreferrers", "testapp.story", 1, "views", 1, TS, {"d": {"referrer": "bing.com"}}],
        ["testapp.storyreferrers", "testapp.story", 1, "views", 1, TS],
    ])
    parsed = messages.parse(body)
    assert [e.extras for e in parsed.events] == [{"d": {"referrer": "bing.com"}}, None]
