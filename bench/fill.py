"""Fill a data model's queue fast (the fill is not what is measured) and drain it raw (the baseline)."""
from __future__ import annotations

import base64
import json
import random
import time
import uuid
from collections.abc import Iterator

from kombu import Consumer, Producer

DATA_LABEL = "testapp.articletrackabledata"
PARENT_LABEL = "testapp.article"
FIELDS = ("impressions", "click_throughs")
DAY_MS = 86_400_000


def spread(n: int, objects: int = 1000, days: int = 5, seed: int = 7) -> Iterator[tuple]:
    """Yield `n` events over `objects` parents × 2 fields × `days` day buckets (10k keys by default)."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    for _ in range(n):
        yield (DATA_LABEL, PARENT_LABEL, rng.randrange(1, objects + 1), rng.choice(FIELDS), 1,
               now - rng.randrange(days) * DAY_MS)


def unbuffered_bodies(n: int) -> Iterator[bytes]:
    """Yield `n` one-event messages, as send_increment_message publishes them without a buffer."""
    from trackable import messages

    for event in spread(n):
        yield messages.build([event])


def buffered_bodies(n: int, max_events: int = 1000) -> list[bytes]:
    """Return the messages the journal's relay publishes for `n` sends of the spread, `max_events` per batch."""
    from trackable import messages, relay

    events = [list(event) for event in spread(n)]
    bodies: list[bytes] = []
    for start in range(0, n, max_events):
        for _, message_id, chunk in relay.batch_messages("0" * 24, start, start + max_events, events[start : start + max_events]):
            bodies.append(messages.build(chunk, message_id))
    return bodies


def fill(bodies) -> int:
    """Put `bodies` on the data model's queue; return how many."""
    from django.conf import settings

    from trackable import transport

    queue = transport.queue_for(DATA_LABEL)
    conn = transport.connection()
    try:
        channel = conn.channel()
        queue(channel).declare()
        if settings.BROKER == "redis":
            return _fill_redis(channel, queue.name, bodies)
        producer = Producer(channel)
        n = 0
        for body in bodies:
            producer.publish(body, routing_key=queue.name, content_type="application/json",
                             content_encoding="utf-8", delivery_mode=2)
            n += 1
        return n
    finally:
        conn.release()


def _fill_redis(channel, name: str, bodies) -> int:
    """LPUSH kombu's own envelope through a pipeline (kombu publishes one round trip per message)."""
    client = channel.client
    n = 0
    pipe = client.pipeline(transaction=False)
    for body in bodies:
        envelope = {
            "body": base64.b64encode(body).decode(), "content-encoding": "utf-8", "content-type": "application/json",
            "headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": name},
                                          "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
        }
        pipe.lpush(name, json.dumps(envelope))
        n += 1
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()
    return n


def raw_drain(n: int, batch_size: int) -> float:
    """Consume and ack `n` messages with kombu alone (no parsing, no database); return messages/s."""
    from trackable import transport

    conn = transport.connection()
    batch: list = []
    taken = 0
    try:
        channel = conn.channel()
        consumer = Consumer(channel, queues=[transport.queue_for(DATA_LABEL)], on_message=batch.append)
        consumer.qos(prefetch_count=min(batch_size, 65535))
        started = time.perf_counter()
        with consumer:
            while taken < n:
                try:
                    conn.drain_events(timeout=2.0)
                except TimeoutError:
                    break
                if len(batch) >= batch_size or taken + len(batch) >= n:
                    _ack(batch, conn)
                    taken += len(batch)
                    batch.clear()
        elapsed = time.perf_counter() - started
        channel.close()
    finally:
        conn.release()
    return taken / elapsed


def _ack(batch: list, conn) -> None:
    if conn.transport.driver_type == "amqp":
        max(batch, key=lambda m: m.delivery_tag).ack(multiple=True)
    else:
        for message in batch:
            message.ack()
