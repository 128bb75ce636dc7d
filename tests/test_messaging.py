"""The producer: no database on the request path, clear errors at the call, bounded broker failures."""
import time

import pytest
from django.test import override_settings

from tests.helpers import fold
from tests.testapp.models import Article, ArticleTrackableData, Gadget, Video
from trackable.exceptions import NotRegistered, TrackableConnectionError, UnknownField
from trackable.messaging import (
    IncrementMessage,
    TrackableMessage,
    send_decrement_message,
    send_increment_message,
    send_message,
)

pytestmark = pytest.mark.django_db


def test_request_path_makes_no_database_query(client, django_assert_num_queries):
    article = Article.objects.create(title="a")
    send_increment_message(None, article, "impressions")  # warm the connection outside the count
    with django_assert_num_queries(0):
        for _ in range(10):
            assert send_increment_message(None, article, "impressions") is True
        response = client.get(f"/articles/{article.pk}/")
    assert response.status_code == 200
    assert response.content == f"{article.pk} sent=True".encode()


def test_unknown_field_raises_before_publishing():
    article = Article.objects.create(title="a")
    with pytest.raises(UnknownField) as err:
        send_increment_message(None, article, "clicks")
    assert "'clicks' is not a counter field of " in str(err.value)
    assert fold().messages == 0


def test_unregistered_model_raises():
    gadget = Gadget.objects.create(name="g")
    with pytest.raises(NotRegistered, match="The model Gadget is not registered with trackable"):
        send_increment_message(None, gadget, "hits")


def test_unsaved_object_raises():
    with pytest.raises(ValueError) as err:
        send_increment_message(None, Article(title="new"), "impressions")
    assert str(err.value) == "Cannot track an unsaved Article: save it first so it has a primary key."


@pytest.mark.parametrize("amount", [0, 1.5, True, 2**31])
def test_bad_amount_raises(amount):
    article = Article.objects.create(title="a")
    with pytest.raises(ValueError, match="must be a non-zero integer"):
        send_increment_message(None, article, "impressions", amount)


def test_custom_message_type_sends_several_fields():
    class PlayMessage(TrackableMessage):
        def __init__(self, request, video, seconds):
            super().__init__(request, video)
            self.seconds = seconds

        def events(self):
            return [("plays", 1), ("score", self.seconds // 10)]

    video = Video.objects.create(title="v")
    assert PlayMessage(None, video, 95).send() is True
    assert send_message(None, video, {"plays": 2, "score": -3}) is True
    fold()
    from tests.testapp.models import VideoTrackableData

    assert list(VideoTrackableData.objects.values_list("plays", "score")) == [(3, 6)]


def test_decrement_and_explicit_amount():
    article = Article.objects.create(title="a")
    send_increment_message(None, article, "impressions", 10)
    send_decrement_message(None, article, "impressions", 3)
    fold()
    assert ArticleTrackableData.objects.get().impressions == 7


def test_event_time_is_taken_at_the_call(monkeypatch):
    article = Article.objects.create(title="a")
    two_days_ago = time.time() - 2 * 86400
    message = IncrementMessage(None, article, "impressions")
    body_groups = message.build(ts_ms=int(two_days_ago * 1000))
    from trackable import messages, transport

    for label, events in body_groups.items():
        transport.publish(messages.build(events), label)
    fold()
    from datetime import datetime, timezone

    from trackable.buckets import DAY, bucket_start

    expected = bucket_start(datetime.fromtimestamp(two_days_ago, tz=timezone.utc), DAY)
    assert list(ArticleTrackableData.objects.values_list("collected_during", "impressions")) == [(expected, 1)]


# Without the journal (TRACKABLE_JOURNAL = False) the request publishes, and meets the broker's outages.
UNREACHABLE = {
    "TRACKABLE_BROKER_URL": "amqp://guest:guest@127.0.0.1:9//",
    "TRACKABLE_CONNECT_TIMEOUT": 0.5,
    "TRACKABLE_JOURNAL": False,
}


def test_broker_down_raises_a_clear_error_without_capture():
    article = Article.objects.create(title="a")
    unreachable = pytest.raises(TrackableConnectionError, match="Could not publish to the trackable broker")
    with override_settings(**UNREACHABLE), unreachable:
        send_increment_message(None, article, "impressions")


def test_broker_down_is_captured_with_one_connection_attempt(client, monkeypatch):
    from trackable import transport

    article = Article.objects.create(title="a")
    attempts = []
    real_connection = transport.connection
    monkeypatch.setattr(transport, "connection", lambda **kw: attempts.append(kw) or real_connection(**kw))
    with override_settings(TRACKABLE_CAPTURE_CONNECTION_ERRORS=True, **UNREACHABLE):
        responses = [client.get(f"/articles/{article.pk}/") for _ in range(20)]
    assert [r.status_code for r in responses] == [200] * 20
    assert responses[0].content == f"{article.pk} sent=False".encode()
    # 40 events (two per view) during the outage, one connection attempt: the back-off answers the rest.
    assert len(attempts) == 1
