"""The fold never stalls: values the database would refuse are set aside with a reason, the rest is counted."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from kombu import Producer

from tests.helpers import drain_dead_letters, fold, publish_raw, row_counts
from tests.testapp.models import Article, ArticleTrackableData, Player, PlayerTrackableData
from trackable import messages, transport
from trackable.exceptions import InvalidPrimaryKey
from trackable.messaging import send_increment_message, send_message

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = "testapp.articletrackabledata"
PLAYER = "testapp.playertrackabledata"
TS = 1_796_000_000_000  # a fixed moment (2026-11-29): no test depends on today's date


def article_message(pk, amount=1, field="impressions", label=ARTICLE):
    return messages.build([(label, "testapp.article", pk, field, amount, TS)])


def player_message(pk, amount=1):
    return messages.build([(PLAYER, "testapp.player", pk, "quests", amount, TS)])


def errors():
    return sorted(headers["x-trackable-error"] for _, headers in drain_dead_letters())


def test_a_pk_beyond_the_parents_range_is_set_aside_and_its_neighbours_counted():
    article = Article.objects.create(title="a")
    publish_raw(article_message(article.pk), ARTICLE)
    publish_raw(article_message(2**70), ARTICLE)
    publish_raw(article_message(-(2**63) - 1), ARTICLE)
    publish_raw(article_message(article.pk, 4), ARTICLE)

    result = fold()

    assert (result.messages, result.events, result.malformed) == (2, 2, 2)
    assert ArticleTrackableData.objects.get().impressions == 5
    limit = "Article.id (BigAutoField) holds integers from -9223372036854775808 to 9223372036854775807"
    assert errors() == [
        f"parent pk '-9223372036854775809' cannot be stored: {limit}",
        f"parent pk '1180591620717411303424' cannot be stored: {limit}",
    ]
    assert (fold().messages, fold().malformed) == (0, 0)  # nothing left behind, nothing retried


def test_pks_at_the_edges_of_the_range_are_counted_and_a_boolean_one_is_not():
    # The fold takes a short path for ints its column holds as they are: the edges, and what is not an int.
    publish_raw(article_message(2**63 - 1), ARTICLE)
    publish_raw(article_message(-(2**63)), ARTICLE)
    publish_raw(article_message(2**63), ARTICLE)
    publish_raw(messages.build([(ARTICLE, "testapp.article", True, "impressions", 1, TS)]), ARTICLE)
    publish_raw(article_message("12"), ARTICLE)

    result = fold()

    assert (result.messages, result.malformed) == (3, 2)
    assert sorted(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [
        (-(2**63), 1), (12, 1), (2**63 - 1, 1)
    ]
    assert errors() == [
        "event 0: parent pk 'True' is not an integer or a short string",
        "parent pk '9223372036854775808' cannot be stored: Article.id (BigAutoField) holds integers from "
        "-9223372036854775808 to 9223372036854775807",
    ]


def test_string_pks_that_a_column_cannot_hold_are_set_aside_never_truncated():
    publish_raw(player_message("p" * 40), PLAYER)
    publish_raw(player_message("p" * 40 + "q"), PLAYER)  # PostgreSQL's varchar(40) cast would cut the q
    publish_raw(player_message("nul\x00here"), PLAYER)

    result = fold()

    assert (result.messages, result.malformed) == (1, 2)
    assert row_counts(PlayerTrackableData, "quests")[0][::2] == ("p" * 40, 1)
    assert errors() == [
        "parent pk 'nul\\x00here' cannot be stored: PlayerTrackableData.object_id (CharField) cannot hold a NUL character",
        f"parent pk '{'p' * 40}q' cannot be stored: PlayerTrackableData.object_id (CharField) holds at most 40 characters",
    ]


def test_a_message_id_with_a_trailing_newline_is_malformed():
    article = Article.objects.create(title="a")
    body = json.dumps({"v": 1, "id": "ab" * 16 + "\n", "e": [[ARTICLE, "testapp.article", article.pk, "impressions", 1, TS]]})
    publish_raw(body.encode(), ARTICLE)
    publish_raw(article_message(article.pk), ARTICLE)

    result = fold()

    assert (result.messages, result.malformed) == (1, 1)
    assert errors() == ["id is not 32 lowercase hex digits"]


def test_a_sum_that_would_overflow_a_counter_is_set_aside_with_the_fix_and_replayed_after_it():
    a, b = Article.objects.create(title="a"), Article.objects.create(title="b")
    most = 2**31 - 1
    publish_raw(article_message(a.pk, most), ARTICLE)
    publish_raw(article_message(b.pk, 3), ARTICLE)
    publish_raw(article_message(a.pk, most), ARTICLE)  # the row would hold 2**32 - 2
    publish_raw(article_message(b.pk, 4), ARTICLE)

    result = fold()

    assert (result.messages, result.events, result.malformed) == (3, 3, 1)
    assert sorted(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(a.pk, most), (b.pk, 7)]
    assert result.reasons == {"adding": 1}

    # Replayed before the fix: it comes back to the dead letters once, with the same reason.
    call_command("fold_trackable_messages", "--replay-dead-letters", stdout=io.StringIO())
    assert ArticleTrackableData.objects.get(object_id=a.pk).impressions == most
    dead = drain_dead_letters()
    (reason,) = [headers["x-trackable-error"] for _, headers in dead]
    assert reason.startswith(
        "adding 2147483647 to ArticleTrackableData.impressions would exceed PositiveIntegerField's maximum "
        "2147483647; use PositiveBigIntegerField and replay the dead letters with "
        "manage.py fold_trackable_messages --replay-dead-letters ("
    ), reason

    # After the fix (here: room made in the row) a replay counts it, once.
    put_dead_letters(dead)
    ArticleTrackableData.objects.filter(object_id=a.pk).update(impressions=0)
    call_command("fold_trackable_messages", "--replay-dead-letters", stdout=io.StringIO())
    call_command("fold_trackable_messages", "--replay-dead-letters", stdout=io.StringIO())
    assert ArticleTrackableData.objects.get(object_id=a.pk).impressions == most
    assert drain_dead_letters() == []


def test_an_overflow_with_visitors_is_set_aside_and_its_visitors_with_it():
    """The fold writing counters and sketches in one pass isolates a refused message like the plain upsert:
    a new row's overflow (refused by the INSERT) and an existing row's (by the UPDATE) alike."""
    from tests.testapp.models import Page, PageData
    from trackable import uniques

    a, b = Page.objects.create(path="/a"), Page.objects.create(path="/b")
    most = 2**31 - 1

    def visit(page, amount, visitor):
        return messages.build([("testapp.pagedata", "testapp.page", page.pk, "views", amount, TS, {"u": visitor})])

    publish_raw(visit(a, most, "000000000000000a"), "testapp.pagedata")
    publish_raw(visit(b, 3, "000000000000000b"), "testapp.pagedata")
    publish_raw(visit(a, most, "000000000000000c"), "testapp.pagedata")  # the row would hold 2**32 - 2
    publish_raw(visit(b, 4, "000000000000000d"), "testapp.pagedata")

    result = fold()

    assert (result.messages, result.events, result.malformed) == (3, 3, 1)
    assert sorted(PageData.objects.values_list("object_id", "views")) == [(a.pk, most), (b.pk, 7)]
    assert [uniques.uniques(p, "visitors").estimate for p in (a, b)] == [1, 2]  # not the refused one's visitor
    (reason,) = errors()
    assert reason.startswith("adding 2147483647 to PageData.views would exceed PositiveIntegerField's maximum"), reason


def put_dead_letters(dead):
    conn = transport.connection()
    try:
        producer = Producer(conn.default_channel)
        queue = transport.dead_letter_queue()
        for body, headers in dead:
            producer.publish(body, routing_key=queue.name, declare=[queue], content_type="application/json",
                             content_encoding="utf-8", headers=headers)
    finally:
        conn.release()


def test_a_decrement_below_a_signed_counters_minimum_is_set_aside():
    from tests.testapp.models import Video, VideoTrackableData

    video = Video.objects.create(title="v")
    label = "testapp.videotrackabledata"
    low = [(label, "testapp.video", str(video.pk), "score", -(2**31 - 1), TS)]
    publish_raw(messages.build(low), label)
    publish_raw(messages.build(low), label)  # -(2**32 - 2): below IntegerField's minimum
    publish_raw(messages.build([(label, "testapp.video", str(video.pk), "score", -1, TS)]), label)  # exactly the minimum

    result = fold()

    assert (result.messages, result.malformed) == (2, 1)
    assert VideoTrackableData.objects.get().score == -(2**31)
    (reason,) = errors()
    assert reason.startswith(
        "adding -2147483647 to VideoTrackableData.score would go below IntegerField's minimum -2147483648; "
        "use BigIntegerField and replay the dead letters with manage.py fold_trackable_messages --replay-dead-letters"
    ), reason


def test_the_producer_refuses_a_pk_its_data_model_cannot_store():
    with pytest.raises(InvalidPrimaryKey) as err:
        send_increment_message(None, Article(pk=2**70), "impressions")
    assert str(err.value) == (
        "Cannot track Article with pk 1180591620717411303424: Article.id (BigAutoField) holds integers from "
        "-9223372036854775808 to 9223372036854775807."
    )
    assert isinstance(err.value, ValueError)
    with pytest.raises(InvalidPrimaryKey, match=r": PlayerVisitData.object_id \(CharField\) holds at most 40 characters\.$"):
        send_message(None, Player(pk="p" * 41), {"visits": 1, "quests": 1})
    with pytest.raises(InvalidPrimaryKey, match="cannot hold a NUL character"):
        send_increment_message(None, Player(pk="a\x00b"), "quests")
    assert fold().messages == 0  # nothing was sent


def test_a_view_given_a_huge_pk_answers_404_when_it_looks_the_object_up(client):
    assert client.get("/articles/99999999999999999999999/?lookup=1").status_code == 404
    with pytest.raises(InvalidPrimaryKey, match="^Cannot track Article with pk 99999999999999999999999: "):
        client.get("/articles/99999999999999999999999/")  # a view that does not look up must catch it


@pytest.mark.timeout(120)
def test_the_fold_loop_survives_a_poison_message(tmp_path):
    article = Article.objects.create(title="a")
    publish_raw(article_message(2**70), ARTICLE)  # SQLite's OverflowError used to end the loop with rc=1
    publish_raw(article_message(article.pk, 3), ARTICLE)
    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="tests.settings")
    command = [sys.executable, "-m", "django", "fold_trackable_messages", "--loop", "--interval", "0.2"]
    with open(tmp_path / "loop.log", "w+") as log:
        loop = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not ArticleTrackableData.objects.filter(impressions=3).exists():
                time.sleep(0.2)
            time.sleep(1.0)
            alive = loop.poll() is None
        finally:
            loop.terminate()
            loop.wait(timeout=30)
        log.seek(0)
        output = log.read()
    assert alive, output[-3000:]
    assert ArticleTrackableData.objects.get().impressions == 3, output[-3000:]
    assert len(drain_dead_letters()) == 1
