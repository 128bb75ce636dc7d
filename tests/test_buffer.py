"""The producer buffer: many sends, few messages, exact rows; bounded in time and count; fork- and exit-safe."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.test import override_settings

from tests.helpers import fold, row_counts
from tests.testapp.models import Article, ArticleTrackableData, Video, VideoTrackableData
from trackable import buffer, messages, transport
from trackable.messaging import send_decrement_message, send_increment_message, send_message

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
HELD = {"TRACKABLE_BUFFER_MAX_EVENTS": 1000, "TRACKABLE_BUFFER_MAX_DELAY": 600}
ARTICLE_DATA = ArticleTrackableData._meta.label_lower


@pytest.fixture(autouse=True)
def empty_buffer():
    """Leave no buffered event behind for the next test."""
    yield
    with buffer._buffer.lock:
        buffer._buffer.take()


def away_from_minute_end() -> None:
    """Wait until the clock is at least 5 s before the next minute, so one test's events share a minute."""
    seconds = time.time() % 60
    if seconds > 55:
        time.sleep(60.5 - seconds)


def queued_bodies(data_label: str) -> list[dict]:
    """Return the decoded bodies of the messages queued for `data_label`, removing them."""
    out = []
    conn = transport.connection()
    try:
        queue = transport.queue_for(data_label)(conn.default_channel)
        queue.declare()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            message = queue.get(no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            out.append(json.loads(message.body))
    finally:
        conn.release()
    return out


def test_buffered_sends_become_one_message_per_data_model_with_exact_rows(django_assert_num_queries):
    away_from_minute_end()
    a, b = Article.objects.create(title="a"), Article.objects.create(title="b")
    video = Video.objects.create(title="v")
    with override_settings(**HELD), django_assert_num_queries(0):
        for _ in range(3):
            assert send_increment_message(None, a, "impressions") is True
        send_message(None, a, {"click_throughs": 2, "impressions": 4})
        send_increment_message(None, b, "impressions", 5)
        send_decrement_message(None, a, "impressions", 2)
        send_increment_message(None, video, "plays")
        send_increment_message(None, video, "plays")
        assert buffer.pending() == 9
    assert fold().messages == 0
    assert buffer.flush() == 4  # a.impressions, a.click_throughs, b.impressions, video.plays
    assert buffer.pending() == 0
    result = fold()
    assert (result.messages, result.events) == (2, 4)
    assert [r[2:] for r in row_counts(ArticleTrackableData, "impressions", "click_throughs")] == [(5, 2), (5, 0)]
    assert [r[0] for r in row_counts(ArticleTrackableData)] == [a.pk, b.pk]
    assert list(VideoTrackableData.objects.values_list("object_id", "plays")) == [(video.pk, 2)]


def test_identical_keys_are_summed_per_minute_keeping_the_minutes_first_time():
    t0 = 1_763_800_020_000  # 2025-11-22 08:27:00 UTC
    a = ("testapp.articletrackabledata", "testapp.article", 7, "impressions")
    events = [
        (*a, 1, t0 + 5_000),
        (*a, 2, t0 + 59_999),
        (*a, 4, t0 + 60_000),  # the next minute: a key of its own
        (*a[:3], "click_throughs", 3, t0 + 1_000),
        (*a[:3], "click_throughs", -3, t0 + 2_000),  # nets to zero: not sent
    ]
    with override_settings(**HELD):
        buffer.add({a[0]: events})
        assert buffer.pending() == 5
        assert buffer.flush() == 2
    bodies = queued_bodies(ARTICLE_DATA)
    assert len(bodies) == 1
    assert sorted(bodies[0]["e"]) == [[*a, 3, t0 + 5_000], [*a, 4, t0 + 60_000]]


def test_a_sum_beyond_one_events_limit_travels_as_several_events():
    key = ("testapp.articletrackabledata", "testapp.article", 7, "impressions")
    with override_settings(**HELD):
        buffer.add({key[0]: [(*key, messages.MAX_AMOUNT, 1_763_800_020_000)] * 3})
        assert buffer.flush() == 3
    (body,) = queued_bodies(ARTICLE_DATA)
    assert [event[4] for event in body["e"]] == [messages.MAX_AMOUNT] * 3


def test_the_count_bound_publishes_from_the_sending_thread():
    away_from_minute_end()
    article = Article.objects.create(title="a")
    with override_settings(TRACKABLE_BUFFER_MAX_EVENTS=10, TRACKABLE_BUFFER_MAX_DELAY=600):
        for _ in range(9):
            send_increment_message(None, article, "impressions")
        assert buffer.pending() == 9
        send_increment_message(None, article, "impressions")
        assert buffer.pending() == 0
        for _ in range(15):
            send_increment_message(None, article, "impressions")
        assert buffer.pending() == 5
        result = fold()
        assert (result.messages, result.events) == (2, 2)
        assert ArticleTrackableData.objects.get().impressions == 20
        buffer.flush()
    assert fold().events == 1
    assert ArticleTrackableData.objects.get().impressions == 25


def test_the_time_bound_publishes_from_the_flusher_thread():
    article = Article.objects.create(title="a")
    with override_settings(TRACKABLE_BUFFER_MAX_EVENTS=1000, TRACKABLE_BUFFER_MAX_DELAY=0.5):
        started = time.monotonic()
        for _ in range(3):
            send_increment_message(None, article, "impressions")
        assert buffer.pending() == 3
        while buffer.pending() and time.monotonic() - started < 10:
            time.sleep(0.01)
        waited = time.monotonic() - started
    assert buffer.pending() == 0
    assert 0.5 <= waited < 10
    assert fold().messages == 1
    assert ArticleTrackableData.objects.get().impressions == 3


def test_the_buffer_is_flushed_at_exit():
    script = textwrap.dedent(
        """
        import django
        django.setup()
        from django.test import override_settings
        override_settings(TRACKABLE_BUFFER_MAX_EVENTS=1000, TRACKABLE_BUFFER_MAX_DELAY=600).enable()
        from tests.testapp.models import Article
        from trackable import buffer
        from trackable.messaging import send_increment_message
        article = Article(pk=41, title="never saved: the producer needs no database")
        for _ in range(7):
            send_increment_message(None, article, "impressions")
        print(buffer.pending())
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "7\n", "")
    result = fold()
    assert (result.messages, result.events) == (1, 1)
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(41, 7)]


def test_a_forked_child_does_not_resend_its_parents_buffer():
    article = Article.objects.create(title="a")
    with override_settings(**HELD):
        for _ in range(3):
            send_increment_message(None, article, "impressions")
        pid = os.fork()
        if pid == 0:  # the child: starts empty, sends and flushes its own events only
            code = 3 if buffer.pending() else 0
            try:
                send_increment_message(None, article, "click_throughs", 2)
                code = code or (0 if buffer.flush() == 1 else 4)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert buffer.pending() == 3
        buffer.flush()
    result = fold()
    assert (result.messages, result.events) == (2, 2)
    assert list(ArticleTrackableData.objects.values_list("impressions", "click_throughs")) == [(3, 2)]


def test_a_failed_flush_is_logged_and_never_raises_into_the_view(caplog):
    article = Article.objects.create(title="a")
    unreachable = {"TRACKABLE_BROKER_URL": "amqp://guest:guest@127.0.0.1:9//", "TRACKABLE_CONNECT_TIMEOUT": 0.5}
    with override_settings(**HELD, **unreachable):
        assert send_increment_message(None, article, "impressions") is True
        assert buffer.flush() == 0
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "The trackable broker is unreachable (Could not publish to the trackable broker",
        "1 buffered tracking events lost",
    ]


def test_a_failed_flush_is_spooled_when_a_spool_is_set(tmp_path, monkeypatch):
    from trackable import delivery
    from trackable.spool import get_spool

    monkeypatch.setattr(delivery, "ensure_replayer", lambda: None)  # keep the files for the assertion
    article = Article.objects.create(title="a")
    unreachable = {"TRACKABLE_BROKER_URL": "amqp://guest:guest@127.0.0.1:9//", "TRACKABLE_CONNECT_TIMEOUT": 0.5}
    with override_settings(**HELD, **unreachable, TRACKABLE_SPOOL_DIR=str(tmp_path)):
        for _ in range(3):
            send_increment_message(None, article, "impressions")
        assert buffer.flush() == 1  # one aggregated event
        spool = get_spool()
        assert len(spool) == 1  # the three increments went out as one aggregated message
    from trackable import messages

    assert [e.amount for e in messages.parse(spool.pending()[0].read_bytes()).events] == [3]


NO_BUFFER = "it must be an int, 0 to send without a buffer."


@pytest.mark.no_broker
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"TRACKABLE_BUFFER_MAX_EVENTS": -1}, "TRACKABLE_BUFFER_MAX_EVENTS is -1; " + NO_BUFFER),
        ({"TRACKABLE_BUFFER_MAX_EVENTS": "100"}, "TRACKABLE_BUFFER_MAX_EVENTS is '100'; " + NO_BUFFER),
        ({"TRACKABLE_BUFFER_MAX_DELAY": 0}, "TRACKABLE_BUFFER_MAX_DELAY is 0; it must be a positive int or float."),
    ],
)
def test_bad_buffer_settings_are_reported_at_startup(overrides, message):
    from trackable.checks import check_settings

    with override_settings(**overrides):
        errors = check_settings()
    assert [(e.id, e.msg) for e in errors] == [("trackable.E004", message)]
