"""RabbitMQ quorum queues through TRACKABLE_QUEUE_ARGUMENTS: declared as such, folded exactly."""
import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from kombu import Queue

from tests.testapp.models import Article, ArticleTrackableData
from trackable import transport
from trackable.folding import process_messages
from trackable.messaging import send_increment_message

# Quorum queues are RabbitMQ's: these run in the PostgreSQL + RabbitMQ environments of tox.ini and are
# deselected (not skipped) in the others, by tests/conftest.py.
pytestmark = pytest.mark.only_broker("amqp")


@pytest.fixture
def quorum_settings():
    prefix = f"{django_settings.TRACKABLE_QUEUE_PREFIX}-quorum"
    with override_settings(TRACKABLE_QUEUE_ARGUMENTS={"x-queue-type": "quorum"}, TRACKABLE_QUEUE_PREFIX=prefix):
        yield prefix
        conn = transport.connection()
        try:
            channel = conn.channel()
            for name in (f"{prefix}.testapp.articletrackabledata", f"{prefix}.dead"):
                channel.queue_delete(name)
        finally:
            conn.release()
            transport.reset()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("direct_publish")
def test_quorum_queues_are_declared_and_folded_exactly(quorum_settings):
    articles = [Article.objects.create(title=f"q{i}") for i in range(2)]
    for article, n in zip(articles, (5, 2), strict=False):
        for _ in range(n):
            assert send_increment_message(None, article, "impressions") is True
    result = process_messages([ArticleTrackableData])
    assert (result.messages, result.events) == (7, 7)
    rows = sorted(ArticleTrackableData.objects.values_list("object_id", "impressions"))
    assert rows == [(articles[0].pk, 5), (articles[1].pk, 2)]

    # The queue really is a quorum queue: declaring it as a classic one is refused by RabbitMQ.
    name = f"{quorum_settings}.testapp.articletrackabledata"
    conn = transport.connection()
    try:
        channel = conn.channel()
        with pytest.raises(conn.channel_errors) as refused:
            Queue(name, durable=True, queue_arguments={"x-queue-type": "classic"})(channel).declare()
    finally:
        conn.release()
    assert "inequivalent arg 'x-queue-type'" in str(refused.value)
    assert "current is 'quorum'" in str(refused.value)
