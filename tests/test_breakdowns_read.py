"""Reading breakdowns: top values with "(other)" and shares, a series per value, the JSON/CSV API."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import fold, publish_raw
from tests.testapp.models import Article, Story
from trackable import messages
from trackable.breakdowns import ValueEntry, top_values, value_series
from trackable.exceptions import QueryError
from trackable.query import Point

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
DAY1 = datetime(2026, 3, 10, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
END = DAY1 + timedelta(days=3)
THOSE = "those are: browser, device, plan, referrer, terms."
NOT_SHARES = "'referrer' is not a dimension of Story's breakdowns counting 'shares'; " + THOSE


def ts(moment):
    return int((moment + timedelta(hours=12)).timestamp() * 1000)


def publish(story, day, **referrers):
    events = [
        ["testapp.storyreferrers", "testapp.story", story.pk, "views", n, ts(day), {"d": {"referrer": host.replace("_", ".")}}]
        for host, n in referrers.items()
    ]
    publish_raw(messages.build(events), "testapp.storyreferrers")


@pytest.fixture
def stories():
    one, two = Story.objects.create(title="one"), Story.objects.create(title="two")
    publish(one, DAY1, google_com=6, lobste_rs=2, **{"": 2})
    publish(one, DAY2, google_com=4, bing_com=1)
    publish(two, DAY1, lobste_rs=5, **{"(other)": 3})
    fold()
    return one, two


def test_top_values_of_one_object_with_shares(stories):
    one, _ = stories
    assert top_values(one, "referrer", "views", DAY1, END) == [
        ValueEntry("google.com", 10, 10 / 15),
        ValueEntry("", 2, 2 / 15),
        ValueEntry("lobste.rs", 2, 2 / 15),
        ValueEntry("bing.com", 1, 1 / 15),
    ]
    assert top_values(one, "referrer", start=DAY2, end=END, n=1) == [
        ValueEntry("google.com", 4, 0.8),
        ValueEntry("(other)", 1, 0.2),
    ]


def test_top_values_of_a_model_and_of_a_queryset(stories):
    one, two = stories
    assert top_values(Story, "referrer", "views", DAY1, END, n=2) == [
        ValueEntry("google.com", 10, 10 / 23),
        ValueEntry("lobste.rs", 7, 7 / 23),
        ValueEntry("(other)", 6, 6 / 23),  # "" and bing.com beyond the top 2, and the 3 the fold put under "(other)"
    ]
    assert top_values(Story.objects.filter(pk=two.pk), "referrer", start=DAY1, end=END) == [
        ValueEntry("lobste.rs", 5, 5 / 8),
        ValueEntry("(other)", 3, 3 / 8),
    ]
    assert top_values(Story, "referrer", start=DAY1 + timedelta(days=5), end=END + timedelta(days=5)) == []


def test_a_series_per_value(stories):
    one, _ = stories
    assert value_series(one, "referrer", "views", DAY1, END, n=2) == {
        "google.com": [Point(DAY1, 6), Point(DAY2, 4), Point(DAY2 + timedelta(days=1), 0)],
        "": [Point(DAY1, 2), Point(DAY2, 0), Point(DAY2 + timedelta(days=1), 0)],
    }
    assert value_series(one, "referrer", start=DAY1, end=END, values=["bing.com"], granularity="month") == {
        "bing.com": [Point(datetime(2026, 3, 1, tzinfo=UTC), 1)]
    }


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: top_values(s, "referer"), "'referer' is not a dimension of Story's breakdowns; " + THOSE),
        (lambda s: top_values(s, "referrer", "shares"), NOT_SHARES),
        (lambda s: top_values(Article, "referrer"), "Article has no breakdown registered; see docs/breakdowns.rst to declare one."),  # noqa: E501
        (lambda s: top_values(s, "referrer", n=0), "n must be an integer from 1 to 1000, not 0."),
        (lambda s: top_values("story", "referrer"), "Break down an object, a queryset or a model, not 'story'."),
        (
            lambda s: value_series(s, "referrer", start=DAY1, end=END, values="google.com"),
            "values must be a list of dimension values, e.g. ['google.com'].",
        ),
    ],
)
def test_bad_questions_are_refused_with_a_sentence(stories, call, message):
    with pytest.raises(QueryError) as err:
        call(stories[0])
    assert str(err.value) == message


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("staff", password="pw", is_staff=True))
    return client


def test_the_api_serves_top_values_as_json_and_csv(stories, staff_client):
    one, _ = stories
    url = f"/trackable/api/testapp.story/{one.pk}/breakdown/?dimension=referrer&start=2026-03-10&end=2026-03-13&n=2"
    answer = staff_client.get(url).json()
    assert answer == {
        "parent": "testapp.story",
        "pk": one.pk,
        "dimension": "referrer",
        "field": "views",
        "start": "2026-03-10T00:00:00+00:00",
        "end": "2026-03-13T00:00:00+00:00",
        "total": 15,
        "values": [
            {"value": "google.com", "label": "google.com", "total": 10, "share": 0.666667},
            {"value": "", "label": "(none)", "total": 2, "share": 0.133333},
            {"value": "(other)", "label": "(other)", "total": 3, "share": 0.2},
        ],
    }
    csv = staff_client.get(url + "&format=csv").content.decode()
    assert csv == "referrer,views,share\ngoogle.com,10,0.666667\n,2,0.133333\n(other),3,0.2\n"
    whole = staff_client.get("/trackable/api/testapp.story/breakdown/?dimension=referrer&start=2026-03-10&end=2026-03-13&n=1")
    assert [(v["value"], v["total"]) for v in whole.json()["values"]] == [("google.com", 10), ("(other)", 13)]


def test_the_api_serves_a_series_per_value(stories, staff_client):
    one, _ = stories
    url = (
        f"/trackable/api/testapp.story/{one.pk}/breakdown/series/?dimension=referrer&value=google.com&value=bing.com"
        "&start=2026-03-10&end=2026-03-12"
    )
    assert staff_client.get(url).json()["series"] == {
        "google.com": [["2026-03-10T00:00:00+00:00", 6], ["2026-03-11T00:00:00+00:00", 4]],
        "bing.com": [["2026-03-10T00:00:00+00:00", 0], ["2026-03-11T00:00:00+00:00", 1]],
    }


@pytest.mark.parametrize(
    "query, status, error",
    [
        ("", 400, "Name the dimension to break down by with ?dimension=, e.g. ?dimension=referrer."),
        ("dimension=referer", 400, "'referer' is not a dimension of Story's breakdowns; " + THOSE),
        ("dimension=referrer&n=0", 400, "n='0' is not a whole number from 1 to 1000; ask for e.g. ?n=10."),
        (
            "dimension=referrer&start=yesterday",
            400,
            "start='yesterday' is not an ISO 8601 date or datetime, e.g. 2026-05-01 or 2026-05-01T12:00Z.",
        ),
        ("dimension=referrer&field=shares", 400, NOT_SHARES),
    ],
)
def test_the_api_refuses_bad_parameters(stories, staff_client, query, status, error):
    response = staff_client.get(f"/trackable/api/testapp.story/{stories[0].pk}/breakdown/?{query}")
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_the_api_refuses_too_many_values_and_strangers(stories, staff_client, client):
    url = f"/trackable/api/testapp.story/{stories[0].pk}/breakdown/series/?dimension=referrer&" + "&".join(["value=a"] * 21)
    response = staff_client.get(url)
    assert (response.status_code, response.json()) == (400, {"error": "Ask for at most 20 values at once, not 21."})
    hours = f"/trackable/api/testapp.story/{stories[0].pk}/breakdown/series/?dimension=plan&start=2000-01-01&end=2026-01-01"
    response = staff_client.get(hours)
    assert (response.status_code, response.json()) == (400, {"error": (
        "This window holds about 227,928 hour buckets, more than the 100,000 a series may have; ask for a shorter window "
        "or a coarser ?granularity=."
    )})
    staff_client.logout()
    assert staff_client.get(f"/trackable/api/testapp.story/{stories[0].pk}/breakdown/?dimension=referrer").status_code == 403
