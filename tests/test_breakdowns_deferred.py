"""The breakdowns' values computed by the relay from what the view recorded: the same values, bounded records."""
from __future__ import annotations

import json
import logging

import pytest
from django.test import override_settings
from django.test.client import RequestFactory

from tests.helpers import fold
from tests.testapp.models import Guide, GuideClients, GuideData, GuideReferrers, GuideSearches, Story, StoryClients
from trackable import journal, recorded, relay
from trackable.management.commands.trackable_status import describe_journal
from trackable.messaging import IncrementMessage, IncrementsMessage, send_increment_message
from trackable.sites import site
from trackable.status import journal_status

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)

# Requests as a site meets them, hostile ones included: (path, META).
REQUESTS = [
    ("/guides/1/", {"HTTP_USER_AGENT": FIREFOX, "HTTP_REFERER": "https://www.google.com/search?q=Tide+Tables&hl=en"}),
    ("/guides/1/?plan=pro&utm_source=News%20Letter", {"HTTP_USER_AGENT": IPHONE, "HTTP_REFERER": "https://news.ycombinator.com/"}),
    ("/guides/1/", {}),  # no headers at all
    ("/guides/1/", {"HTTP_REFERER": "http://testserver/guides/"}),  # the site's own page
    ("/guides/1/", {
        "HTTP_REFERER": "https://bing.com/search?q=%22quoted%22+%5Cback\\slash", "HTTP_USER_AGENT": 'a "quoted" \\ agent',
    }),
    ("/guides/1/", {"HTTP_REFERER": "https://yandex.ru/search/?text=приливы", "HTTP_USER_AGENT": "Ünïcödé/1.0 ☃"}),
    ("/guides/1/", {"HTTP_REFERER": "https://duckduckgo.com/?q=a\x00b\x1fc\x7f", "HTTP_USER_AGENT": "ctrl\x00\x01\n\tagent"}),
    ("/guides/1/", {"HTTP_REFERER": "https://example.org/" + "x" * 5000, "HTTP_USER_AGENT": "Mozilla/5.0 " + "y" * 10_000}),
    ("/guides/1/", {"HTTP_REFERER": "not a url at all", "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.8"}),
    ("/guides/1/", {"HTTP_REFERER": "https://[::1]:8000/x", "HTTP_USER_AGENT": "\ud800 lone surrogate"}),
    ("/guides/1/", {"HTTP_REFERER": "https://user:pw@www.Google.com./search?q=%E2%98%83", "SERVER_NAME": "other.example"}),
    ("/guides/1/?utm_source=" + "z" * 9000, {"HTTP_USER_AGENT": FIREFOX}),
]


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """Date every send at one moment, so a send built twice makes the same events."""
    from trackable import messaging

    monkeypatch.setattr(messaging, "clock", lambda: 1_773_144_000.0)  # 2026-03-10 12:00 UTC


def _request(path, meta):
    request = RequestFactory().get(path, **meta)
    if "SERVER_NAME" in meta:
        request.META.pop("HTTP_HOST", None)  # no Host header: the server's name stands for the site
    return request


def _breakdown_events(events):
    """Return {(data label, field, amount): dimension values} of the breakdown events among `events`."""
    return {(e[0], e[3], e[4]): e[6]["d"] for e in events if len(e) == 7 and isinstance(e[6], dict) and "d" in e[6]}


def _relayed(message):
    """Return the events the relay publishes for one send: journaled, read back, expanded."""
    events = [e for es in message.build().values() for e in es]
    payload = journal.encode(events)[journal.HEADER.size :]
    return recorded.expand(json.loads(payload))


def _direct(message):
    """Return the events of the same send with the values computed in the view (no journal)."""
    with override_settings(TRACKABLE_JOURNAL=False):
        return [list(e) for es in message.build().values() for e in es]


@pytest.mark.django_db
@pytest.mark.no_broker
@pytest.mark.parametrize(("path", "meta"), REQUESTS)
def test_the_relay_computes_the_values_the_view_would_have(path, meta):
    guide, story = Guide.objects.create(title="g"), Story.objects.create(title="s")
    for obj in (guide, story):
        message = IncrementMessage(_request(path, meta), obj, "views", 2)
        relayed, direct = _relayed(message), _direct(IncrementMessage(_request(path, meta), obj, "views", 2))
        assert len(_breakdown_events(direct)) == 3
        assert _breakdown_events(relayed) == _breakdown_events(direct)
        assert sorted(map(str, relayed)) == sorted(map(str, direct))  # the plain event too, nothing else


@pytest.mark.django_db
@pytest.mark.no_broker
def test_explicit_values_and_several_fields_are_carried_too():
    story = Story.objects.create(title="s")
    request = _request("/s/?plan=free", {"HTTP_REFERER": "https://www.bing.com/search?q=x", "HTTP_USER_AGENT": IPHONE})
    explicit = {"referrer": "Newsletter ", "plan": 7}

    def message():
        return IncrementsMessage(request, story, {"views": 1, "shares": 3}, dimensions=explicit)

    relayed = _relayed(message())
    assert _breakdown_events(relayed) == _breakdown_events(_direct(message()))
    assert _breakdown_events(relayed)[("testapp.storyreferrers", "views", 1)] == {"referrer": "Newsletter"}
    assert _breakdown_events(relayed)[("testapp.storyclients", "views", 1)] == {
        "browser": "Mobile Safari", "device": "mobile", "plan": "7"
    }


@pytest.mark.django_db
@pytest.mark.no_broker
def test_the_view_records_only_the_parts_the_sources_read_each_cut_to_its_bound(settings):
    settings.TRACKABLE_USER_AGENT_MAX_LENGTH = 100
    guide = Guide.objects.create(title="g")
    request = _request("/guides/1/?utm_source=x", {
        "HTTP_USER_AGENT": "u" * 300, "HTTP_REFERER": "https://e.org/" + "r" * 3000,
        "HTTP_ACCEPT_LANGUAGE": "en", "HTTP_COOKIE": "s=1",
    })
    events = [e for es in IncrementMessage(request, guide, "views").build().values() for e in es]
    record = json.loads(journal.encode(events)[journal.HEADER.size :])
    assert record == [[
        "testapp.guidedata", "testapp.guide", guide.pk, "views", 1, record[0][5],
        {"b": {"testapp.guidereferrers": {}, "testapp.guidesearches": {}, "testapp.guideclients": {}},
         "r": {"a": "u" * 100, "h": "testserver", "s": ("https://e.org/" + "r" * 3000)[:2000]}},
    ]]


@pytest.mark.django_db
@pytest.mark.no_broker
def test_a_user_agent_seen_before_is_cut_to_the_length_now_set(settings):
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 seen-twice"
    guide = Guide.objects.create(title="g")

    def recorded_agent():
        request = _request("/guides/1/", {"HTTP_USER_AGENT": agent})
        events = [e for es in IncrementMessage(request, guide, "views").build().values() for e in es]
        return json.loads(journal.encode(events)[journal.HEADER.size :])[0][6]["r"]["a"]

    assert recorded_agent() == agent  # remembered by the process, as written
    settings.TRACKABLE_USER_AGENT_MAX_LENGTH = 20
    assert recorded_agent() == agent[:20]


@pytest.mark.django_db
@pytest.mark.no_broker
def test_the_journal_writes_a_deferred_record_as_the_encoder_would():
    story = Story.objects.create(title="s")
    for path, meta in REQUESTS:
        for explicit in (None, {"referrer": 'a "b" \\ ☃', "plan": None}):
            message = IncrementMessage(_request(path, meta), story, "views", dimensions=explicit)
            events = [e for es in message.build().values() for e in es]
            text = journal._formatted(events)
            assert text is not None  # the fast way
            assert json.loads(text) == json.loads(journal._dumps(events))


@pytest.mark.django_db(transaction=True)
def test_deferred_sends_count_exactly_after_the_fold():
    guide = Guide.objects.create(title="g")
    for path, meta in REQUESTS * 3:
        send_increment_message(_request(path, meta), guide, "views")
    fold()
    n = 3 * len(REQUESTS)
    assert sum(GuideData.objects.values_list("views", flat=True)) == n
    for model in (GuideReferrers, GuideSearches, GuideClients):
        assert sum(model.objects.values_list("views", flat=True)) == n
    referrers = dict(GuideReferrers.objects.values_list("referrer", "views"))
    assert (referrers["google.com"], referrers["(internal)"], referrers[""]) == (6, 3, 9)  # two of them Google
    assert dict(GuideSearches.objects.values_list("terms", "views"))["tide tables"] == 3
    assert dict(GuideClients.objects.values_list("browser", "views"))["Mobile Safari"] == 3


@pytest.mark.django_db
@pytest.mark.no_broker
def test_the_relay_leaves_out_what_it_cannot_compute_and_relays_the_rest(caplog):
    story = Story.objects.create(title="s")
    events = [e for es in IncrementMessage(_request(*REQUESTS[0]), story, "views").build().values() for e in es]
    good = json.loads(journal.encode(events)[journal.HEADER.size :])
    damaged = json.loads(json.dumps(good))
    damaged[0][6]["b"] = {"testapp.nosuchmodel": {}}
    broken = ["", "testapp.story", story.pk, "views", 1, good[0][5], {"b": 5, "r": {}}]
    with caplog.at_level(logging.ERROR, logger="trackable"):
        out = recorded.expand(good + damaged + [broken])
    assert [e[0] for e in out] == [
        "testapp.storydata", "testapp.storyreferrers", "testapp.storysearches", "testapp.storyclients",
        "testapp.storydata",  # the damaged record's plain event is counted; its breakdowns are not
    ]
    assert caplog.records[-1].getMessage() == (
        "The relay left out 2 breakdown events it could not compute: testapp.nosuchmodel is not a registered "
        "data model (1); a deferred item this version does not write (1)."
    )


@pytest.mark.django_db(transaction=True)
def test_a_breakdown_gone_before_the_relay_still_counts_the_totals(caplog):
    guide = Guide.objects.create(title="g")
    with override_settings(TRACKABLE_JOURNAL_RELAY_INTERVAL=3600):
        send_increment_message(_request(*REQUESTS[0]), guide, "views")
        registry = site._registry[Guide]
        saved = registry.pop(GuideSearches)
        site._routes.clear(), site._all_routes.clear()
        try:
            with caplog.at_level(logging.ERROR, logger="trackable"):
                relay.flush(30)
        finally:
            registry[GuideSearches] = saved
            site._routes.clear(), site._all_routes.clear()
    fold()
    assert sum(GuideData.objects.values_list("views", flat=True)) == 1
    assert GuideSearches.objects.count() == 0
    assert dict(GuideReferrers.objects.values_list("referrer", "views")) == {"google.com": 1}  # the others are counted
    assert (
        "left out 1 breakdown events it could not compute: testapp.guidesearches is not a registered data model (1)"
    ) in caplog.text
    assert journal_status()["left_out_breakdown_events"] == 1  # counted where trackable_status reports it
    assert "breakdown events the relay could not compute (see the log): 1" in "\n".join(describe_journal(journal_status()))


@pytest.mark.django_db
@pytest.mark.no_broker
def test_what_leaves_the_host_holds_values_not_the_request():
    story = Story.objects.create(title="s")
    relayed = _relayed(IncrementMessage(_request(*REQUESTS[1]), story, "views"))
    batch = relay.batch_messages("seg", 0, 1, relayed)
    text = json.dumps([chunk for _, _, chunk in batch])
    assert "news.ycombinator.com/" not in text and "iPhone" not in text and "utm_source" not in text
    assert '"referrer": "news.ycombinator.com"' in text


@pytest.mark.django_db
@pytest.mark.no_broker
def test_a_custom_source_runs_in_the_view_and_the_built_in_ones_do_not(monkeypatch):
    story = Story.objects.create(title="s")
    ran = []
    from trackable import dimensions

    monkeypatch.setattr(dimensions, "_parse_referrer", lambda raw: ran.append(raw))
    events = [e for es in IncrementMessage(_request(*REQUESTS[1]), story, "views").build().values() for e in es]
    assert ran == []  # the referrer is parsed by the relay, not the view
    item = json.loads(events[0][6].text)
    assert item["b"]["testapp.storyclients"] == {"plan": "pro"}  # the custom source's value, from the view
    assert StoryClients._meta.label_lower in item["b"]


@pytest.mark.django_db
@pytest.mark.no_broker
def test_the_referrers_query_string_is_recorded_only_for_search_terms():
    route = site.route(Guide, "views", GuideReferrers)
    request = _request("/", {"HTTP_REFERER": "https://mail.example/read?token=s3cret&to=a@b.example#x"})
    assert recorded.Recipe((route,)).parts == ("h", "r")
    assert recorded.capture(request, recorded.Recipe((route,))) == '{"h":"testserver","r":"https://mail.example/read"}'
    searches = site.route(Guide, "views", GuideSearches)
    assert recorded.Recipe((route, searches)).parts == ("h", "s")  # the whole one: search terms are in it


@pytest.mark.django_db
@pytest.mark.no_broker
def test_a_batch_of_sends_expands_as_each_send_alone():
    guide, story = Guide.objects.create(title="g"), Story.objects.create(title="s")
    records, direct = [], []
    for path, meta in REQUESTS * 2:  # values met again come from the relay's memo
        for obj in (guide, story):
            events = [e for es in IncrementMessage(_request(path, meta), obj, "views").build().values() for e in es]
            records.append(json.loads(journal.encode(events)[journal.HEADER.size :]))
            direct.extend(_direct(IncrementMessage(_request(path, meta), obj, "views")))
    recorded._memo.clear()
    together = recorded.expand([event for record in records for event in record])
    assert together == [list(e) for e in direct]  # the same events, in the same order
    assert together == [event for record in records for event in recorded.expand(record)]  # and alone
    assert len({json.dumps(e[6]) for e in together if e[0] == "testapp.guidereferrers"}) == 9  # the distinct hosts


# Object id columns narrower than GuideData's own (a breakdown declared with another object_id field):
# (GuideData's limits, GuideReferrers' limits, a pk only GuideReferrers refuses, the error, a pk both hold).
NARROWER = {
    "a smaller integer column": (
        None, ("int", 0, 32767, "GuideReferrers.object_id (PositiveSmallIntegerField)"), 70_000,
        "GuideReferrers.object_id (PositiveSmallIntegerField) holds integers from 0 to 32767", 32_767,
    ),
    "shorter string columns": (
        ("int", 0, 2**63 - 1, "GuideData.object_id (CharField)", 10),
        ("int", 0, 2**63 - 1, "GuideReferrers.object_id (CharField)", 4),
        70_000, "GuideReferrers.object_id (CharField) holds at most 4 characters", 9_999,
    ),
}


@pytest.mark.django_db
@pytest.mark.no_broker
@pytest.mark.parametrize("case", NARROWER)
def test_a_pk_a_breakdowns_column_cannot_hold_is_refused_in_the_view(monkeypatch, case):
    from dataclasses import replace

    from trackable.exceptions import InvalidPrimaryKey
    from trackable.pklimits import PkLimits

    own, referrers, refused, error, held = NARROWER[case]

    def narrowed(route, limits):
        if limits is None:
            return route
        kind, low, high, holder, *max_length = limits
        new = PkLimits(kind, low, high, *max_length, holder=holder)
        int_low, int_high = new.int_range() or (1, 0)
        return replace(route, pk_limits=new, int_low=int_low, int_high=int_high)

    routes = tuple(
        narrowed(route, own if route.data_model is GuideData else referrers if route.data_model is GuideReferrers else None)
        for route in site.routes(Guide, "views")
    )
    monkeypatch.setitem(site._all_routes, (Guide, "views", None), routes)
    request = _request("/guides/1/", {"HTTP_USER_AGENT": FIREFOX, "HTTP_REFERER": "https://news.example/"})
    with pytest.raises(InvalidPrimaryKey) as err:
        IncrementMessage(request, Guide(pk=refused, title="g"), "views").build()
    assert str(err.value) == f"Cannot track Guide with pk {refused}: {error}."
    events = _relayed(IncrementMessage(request, Guide(pk=held, title="g"), "views"))
    assert sorted((e[0], e[2]) for e in events) == [
        ("testapp.guideclients", held), ("testapp.guidedata", held), ("testapp.guidereferrers", held),
        ("testapp.guidesearches", held),
    ]
