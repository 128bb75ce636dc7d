"""Envelopes of any shape off Redis are set aside, never raised; takes are bounded; leases expire.

These run against the real Redis on every combination (the fold is pointed at it), so the Redis
specifics are tested whatever TRACKABLE_TEST_BROKER is.
"""
from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from django.test import override_settings

from tests.helpers import drain_dead_letters, fold
from tests.testapp.models import Article, ArticleTrackableData
from trackable import messages, redisqueue, transport
from trackable.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)

LABEL = "testapp.articletrackabledata"
TS = 1_796_000_000_000
REDIS = os.environ.get("TRACKABLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_broker():
    """Point the fold at Redis; yield the raw client; delete this test's keys afterwards."""
    with override_settings(TRACKABLE_BROKER_URL=REDIS):
        transport.reset()
        conn = transport.connection()
        client = conn.default_channel.client
        _delete_keys(client)
        try:
            yield client
        finally:
            _delete_keys(client)
            conn.release()
            transport.reset()


def _delete_keys(client) -> None:
    for key in client.scan_iter(f"{settings.QUEUE_PREFIX}*"):
        client.delete(key)


def envelope(payload: bytes, **changes) -> bytes:
    """Return a kombu Redis envelope of `body`, with the given top-level or property changes."""
    env = {
        "body": base64.b64encode(payload).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": "", "routing_key": transport.queue_name(LABEL)},
            "priority": 0,
        },
    }
    for key, value in changes.items():
        if key in env["properties"]:
            env["properties"][key] = value
        else:
            env[key] = value
    return json.dumps(env).encode()


def good(pk: int, n: int = 1) -> bytes:
    return messages.build([(LABEL, "testapp.article", pk, "impressions", n, TS)])


def hostile_envelopes(pk: int) -> list[bytes]:
    return [
        envelope(good(pk), delivery_info={"exchange": "", "routing_key": {"not": "a string"}}),
        envelope(good(pk), delivery_info={"exchange": ["x"], "routing_key": ["q"]}),
        envelope(good(pk), delivery_info="nope"),
        envelope(good(pk), properties="nope"),
        envelope(good(pk), body=12),
        envelope(good(pk), body="***not base64***"),
        json.dumps({"body": "x"}).encode(),
        json.dumps({"properties": {}}).encode(),
        b"[1, 2]",
        b"42",
        b"null",
        b'"a string"',
        b"\xff\xfe not json",
        b"[" * 100_000,
    ]


def test_hostile_envelopes_are_set_aside_and_their_neighbours_counted(redis_broker):
    article = Article.objects.create(title="a")
    queue = transport.queue_name(LABEL)
    hostile = hostile_envelopes(article.pk)
    redis_broker.lpush(queue, envelope(good(article.pk)))
    for raw in hostile:
        redis_broker.lpush(queue, raw)
    # Delivery tags are the fold's to choose: a missing, odd or shared one is replaced, the message counted.
    redis_broker.lpush(
        queue, envelope(good(article.pk, 2), delivery_tag="same"), envelope(good(article.pk, 3), delivery_tag="same")
    )
    redis_broker.lpush(queue, envelope(good(article.pk, 4), delivery_tag=5))

    result = fold(LABEL)

    assert (result.messages, result.malformed) == (4, len(hostile))
    assert ArticleTrackableData.objects.get().impressions == 10
    dead = drain_dead_letters()
    assert len(dead) == len(hostile)
    assert {h["x-trackable-error"] for _, h in dead} == {
        "content type 'application/x-corrupt-envelope' is not application/json"
    }
    assert not redis_broker.exists(f"{settings.QUEUE_PREFIX}.unacked")
    assert fold(LABEL).messages == fold(LABEL).malformed == 0


def test_a_dead_folds_hostile_envelopes_are_restored_and_then_set_aside(redis_broker):
    article = Article.objects.create(title="a")
    queue = transport.queue_name(LABEL)
    hostile = hostile_envelopes(article.pk)
    for raw in [envelope(good(article.pk)), *hostile]:
        redis_broker.lpush(queue, raw)
    conn = transport.connection()
    try:
        taken = redisqueue.take(conn.default_channel, [queue], 100, max_bytes=10**7, budget=10**8, dead=None)
        assert len(taken) == 1 + len(hostile)  # and the fold "dies" here, before acking them
        assert redis_broker.llen(queue) == 0
        assert redisqueue.restore_expired(conn.default_channel, lease=0) == 1 + len(hostile)
    finally:
        conn.release()
    assert redis_broker.llen(queue) == 1 + len(hostile)  # byte for byte back on their queue

    result = fold(LABEL)

    assert (result.messages, result.malformed) == (1, len(hostile))
    assert ArticleTrackableData.objects.get().impressions == 1


def test_oversized_envelopes_never_leave_redis_and_takes_stop_at_the_byte_budget(redis_broker):
    article = Article.objects.create(title="a")
    queue = transport.queue_name(LABEL)
    junk = b"x" * (transport.max_envelope_bytes() + 1)
    for _ in range(3):
        redis_broker.lpush(queue, junk)
    for _ in range(20):
        redis_broker.lpush(queue, envelope(good(article.pk)))
    conn = transport.connection()
    try:
        channel = conn.default_channel
        first = redisqueue.take(channel, [queue], 1000, max_bytes=transport.max_envelope_bytes(), budget=1, dead=None)
        assert (len(first), first.oversized) == (1, 3)  # the oversized ones are dropped (dead=None) unread
        second = redisqueue.take(channel, [queue], 1000, max_bytes=10**6, budget=1000, dead=None)
        assert len(second) == -(-1000 // len(envelope(good(article.pk))))  # stops once at the budget
        assert redisqueue.restore(channel, [m.delivery_tag for m in first + second]) == len(first + second)
    finally:
        conn.release()
    for _ in range(2):
        redis_broker.lpush(queue, junk)

    result = fold(LABEL)

    assert (result.messages, result.malformed, result.reasons) == (20, 2, {"oversized envelope": 2})
    dead = drain_dead_letters()
    assert [(len(body), h["x-trackable-error"]) for body, h in dead] == [
        (len(junk), f"envelope is {len(junk)} bytes, over the limit of {transport.max_envelope_bytes()}")
    ] * 2
