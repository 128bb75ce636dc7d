"""The fold end to end on the configured broker and database: exact rows, redelivery, bad input."""
import io
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone as dj_timezone

from tests.helpers import drain_dead_letters, fold, publish_raw
from tests.testapp.models import (
    Article,
    ArticleHourlyData,
    ArticleTotals,
    ArticleTrackableData,
    Player,
    PlayerTrackableData,
    Video,
    VideoTrackableData,
)
from trackable import folding, messages
from trackable.buckets import DAY, HOUR, bucket_start
from trackable.messaging import send_decrement_message, send_increment_message
from trackable.models import FoldedMessage

pytestmark = pytest.mark.django_db
UTC = timezone.utc


def today(granularity=DAY, zone="UTC"):
    return bucket_start(datetime.now(UTC), granularity, zone)


def test_requests_then_fold_leave_exact_rows(client):
    articles = [Article.objects.create(title=f"a{i}") for i in range(3)]
    hits = {articles[0]: 7, articles[1]: 3, articles[2]: 1}
    for article, n in hits.items():
        for _ in range(n):
            assert client.get(f"/articles/{article.pk}/").status_code == 200
    assert ArticleTrackableData.objects.count() == 0  # nothing is written on the request path

    result = fold()

    # The journal's relay sums the events of a batch per row and minute: a few messages, exact rows.
    assert (result.malformed, result.duplicates) == (0, 0)
    assert sorted(ArticleTrackableData.objects.values_list("object_id", "collected_during", "impressions")) == sorted(
        (a.pk, today(), n) for a, n in hits.items()
    )
    assert sorted(ArticleHourlyData.objects.values_list("object_id", "collected_during", "reads")) == sorted(
        (a.pk, today(HOUR), n) for a, n in hits.items()
    )
    assert fold().messages == 0  # nothing left


def test_second_fold_adds_to_existing_rows():
    article = Article.objects.create(title="a")
    for _ in range(4):
        send_increment_message(None, article, "impressions")
    fold()
    for _ in range(5):
        send_increment_message(None, article, "impressions")
    send_increment_message(None, article, "click_throughs", 2)
    fold()
    row = ArticleTrackableData.objects.get()
    assert (row.impressions, row.click_throughs) == (9, 2)


def test_uuid_string_and_untimed_parents():
    video = Video.objects.create(title="v")
    player = Player.objects.create(handle="ana-7")
    article = Article.objects.create(title="a")
    send_increment_message(None, video, "plays", 3)
    send_decrement_message(None, video, "score", 5)
    send_increment_message(None, player, "quests")
    send_increment_message(None, article, "downloads", 40)
    send_increment_message(None, article, "downloads", 2)
    fold()
    assert list(VideoTrackableData.objects.values_list("object_id", "plays", "score")) == [(video.pk, 3, -5)]
    assert list(PlayerTrackableData.objects.values_list("object_id", "quests")) == [("ana-7", 1)]
    assert list(ArticleTotals.objects.values_list("object_id", "downloads")) == [(article.pk, 42)]


def test_positive_counters_stop_at_zero():
    article = Article.objects.create(title="a")
    send_decrement_message(None, article, "impressions", 3)
    fold()
    send_increment_message(None, article, "impressions", 2)
    fold()
    send_decrement_message(None, article, "impressions", 5)
    fold()
    assert ArticleTrackableData.objects.get().impressions == 0


@override_settings(TIME_ZONE="America/New_York")
def test_buckets_follow_the_site_time_zone():
    article = Article.objects.create(title="a")
    send_increment_message(None, article, "impressions")
    fold()
    row = ArticleTrackableData.objects.get()
    assert row.collected_during == today(DAY, "America/New_York")
    assert row.collected_during.astimezone(timezone(timedelta(hours=-5))).hour in (0, 1)


@pytest.mark.usefixtures("direct_publish")
def test_redelivered_message_is_counted_once(monkeypatch):
    article = Article.objects.create(title="a")
    for _ in range(6):
        send_increment_message(None, article, "impressions")

    def crash(*args, **kwargs):
        raise RuntimeError("worker died between commit and ack")

    monkeypatch.setattr(folding, "_ack", crash)
    with pytest.raises(RuntimeError, match="between commit and ack"):
        fold(ArticleTrackableData)
    assert ArticleTrackableData.objects.get().impressions == 6  # committed, not acked
    monkeypatch.undo()

    duplicates, deadline = 0, time.monotonic() + 30  # Redis gives unacked messages back after a timeout
    while duplicates < 6 and time.monotonic() < deadline:
        result = fold(ArticleTrackableData)
        duplicates += result.duplicates
        assert result.messages == 0
    assert duplicates == 6
    assert ArticleTrackableData.objects.get().impressions == 6


def test_malformed_messages_are_dead_lettered_and_the_rest_counted(caplog):
    article = Article.objects.create(title="a")
    label = "testapp.articletrackabledata"
    ts = int(time.time() * 1000)
    good = lambda pk, n=1: messages.build([(label, "testapp.article", pk, "impressions", n, ts)])  # noqa: E731
    publish_raw(good(article.pk), label)
    publish_raw(b"\x80\x04\x95\x00 not really a pickle", label, content_type="application/x-python-serialize")
    publish_raw(b"{not json", label)
    publish_raw(messages.build([(label, "testapp.article", article.pk, "nope", 1, ts)]), label)
    publish_raw(messages.build([("testapp.ghostdata", "testapp.article", 1, "hits", 1, ts)]), label)
    publish_raw(messages.build([(label, "testapp.video", 1, "impressions", 1, ts)]), label)
    publish_raw(messages.build([(label, "testapp.article", "abc", "impressions", 1, ts)]), label)
    publish_raw(messages.build([("testapp.articletotals", "testapp.article", 1, "downloads", 1, ts)]), label)
    publish_raw(good(article.pk, 4), label)

    result = fold()

    assert (result.messages, result.events, result.malformed) == (2, 2, 7)
    assert ArticleTrackableData.objects.get().impressions == 5
    dead = drain_dead_letters()
    assert len(dead) == 7
    errors = sorted(headers["x-trackable-error"] for _, headers in dead)
    assert errors == sorted(
        [
            "content type 'application/x-python-serialize' is not application/json",
            "body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            "'nope' is not a counter field of testapp.ArticleTrackableData",
            "data model 'testapp.ghostdata' is not registered",
            "'testapp.video' is not registered with testapp.ArticleTrackableData",
            "parent pk 'abc' cannot be stored: Article.id (BigAutoField) holds integers and 'abc' is not one",
            f"event for testapp.articletotals arrived on queue {folding.transport.queue_name(label)}",
        ]
    )
    assert any(b"not really a pickle" in body for body, _ in dead)  # kept byte for byte, never unpickled
    assert "Malformed trackable message moved to queue" in caplog.text
    assert fold().messages == 0  # nothing retried forever


@override_settings(TRACKABLE_REMOVE_MALFORMED_MESSAGES=True)
def test_malformed_messages_can_be_removed_instead(caplog):
    publish_raw(b"garbage", "testapp.articletrackabledata")
    result = fold()
    assert result.malformed == 1
    assert result.reasons == {"body is not JSON": 1}
    assert drain_dead_letters() == []
    assert "Malformed trackable message removed: body is not JSON" in caplog.text


@pytest.mark.usefixtures("direct_publish")
def test_fold_only_named_data_models_keeps_the_others():
    article = Article.objects.create(title="a")
    for _ in range(3):
        send_increment_message(None, article, "impressions")
        send_increment_message(None, article, "reads")
    call_command("fold_trackable_messages", "testapp.ArticleHourlyData", stdout=io.StringIO())
    assert ArticleHourlyData.objects.get().reads == 3
    assert ArticleTrackableData.objects.count() == 0
    result = fold()
    assert result.messages == 3
    assert ArticleTrackableData.objects.get().impressions == 3


def test_command_prints_a_summary(capsys):
    article = Article.objects.create(title="a")
    send_increment_message(None, article, "impressions", 5)
    call_command("fold_trackable_messages", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["messages"], summary["events"], summary["rows"]) == (1, 1, 1)
    call_command("fold_trackable_messages")
    assert capsys.readouterr().out.startswith("Folded 0 events from 0 messages into 0 rows in 0 batches")


@pytest.mark.parametrize(
    "label, error",
    [
        ("testapp.Nope", "Unknown model 'testapp.Nope': name a data model as app_label.ModelName."),
        ("nonsense", "Unknown model 'nonsense': name a data model as app_label.ModelName."),
        (
            "testapp.Article",
            "testapp.Article is not a registered trackable data model; registered data models: "
            "testapp.ArticleHourlyData, testapp.ArticleTotals, testapp.ArticleTrackableData, testapp.GuideClients, "
            "testapp.GuideData, testapp.GuideReferrers, testapp.GuideSearches, "
            "testapp.PageData, testapp.PlayerTrackableData, testapp.PlayerVisitData, testapp.StoryClients, "
            "testapp.StoryData, testapp.StoryReferrers, testapp.StorySearches, testapp.VideoTrackableData, "
            "trackable.PageViews.",
        ),
    ],
)
def test_command_refuses_unknown_models(label, error):
    with pytest.raises(CommandError) as err:
        call_command("fold_trackable_messages", label)
    assert str(err.value) == error


@pytest.mark.usefixtures("direct_publish")
def test_batches_and_max_messages():
    article = Article.objects.create(title="a")
    for _ in range(25):
        send_increment_message(None, article, "impressions")
    result = fold(ArticleTrackableData, batch_size=10, max_messages=15)
    assert (result.messages, result.batches) == (15, 2)
    result = fold(ArticleTrackableData, batch_size=4)
    assert (result.messages, result.batches) == (10, 3)
    assert ArticleTrackableData.objects.get().impressions == 25


def test_ledger_records_ids_and_is_pruned():
    article = Article.objects.create(title="a")
    send_increment_message(None, article, "impressions")
    fold()
    assert FoldedMessage.objects.count() == 1
    old = dj_timezone.now() - timedelta(days=8)
    FoldedMessage.objects.create(id="f" * 32, folded_at=old)
    assert folding.prune_ledger() == 1
    with override_settings(TRACKABLE_LEDGER_RETENTION=1):
        assert folding.prune_ledger(now=dj_timezone.now() + timedelta(seconds=5)) == 1
    assert FoldedMessage.objects.count() == 0


def test_dead_lettering_between_batches_loses_no_message_delivered_meanwhile():
    # On AMQP a round trip while a batch folds (declaring the dead-letter queue) read every delivery
    # ahead of its reply into the batch list, which was then cleared: those messages were acked with
    # the next batch without ever being folded.
    article = Article.objects.create(title="a")
    label = "testapp.articletrackabledata"
    ts = 1_796_000_000_000
    for i in range(300):
        if i % 20 == 0:
            publish_raw(b"{not json", label)
        publish_raw(messages.build([(label, "testapp.article", article.pk, "impressions", 1, ts)]), label)

    result = fold(batch_size=50)

    assert (result.messages, result.malformed) == (300, 15)
    assert ArticleTrackableData.objects.get().impressions == 300
    assert len(drain_dead_letters()) == 15
    assert fold().messages == 0
