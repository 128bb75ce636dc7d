"""P1, the request path: send_increment_message against a bare pooled kombu publish and a SQL UPDATE.

    python bench/bench_publish.py --broker amqp
    python bench/bench_publish.py --broker redis

Prints one JSON line per figure: the value, the baseline measured in the same run, and their ratio.
"""
from __future__ import annotations

import statistics
import threading
import time

from common import emit, median_of, parser, purge_queues, setup


def per_call(fn, calls: int) -> float:
    """Return the mean µs of one call of `fn` over `calls` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def baseline_options() -> dict:
    """Return the baseline's transport options: like ours, publisher confirms included on amqp://."""
    from trackable.conf import settings

    options = dict(settings.BROKER_TRANSPORT_OPTIONS)
    if settings.PUBLISH_CONFIRMS and settings.broker_url.startswith("amqp"):
        options["confirm_publish"] = True  # same guarantee on both sides of the ratio
    return options


def bare_publisher(body: bytes, queue_name: str):
    """Return a function that publishes `body` once through kombu.pools.producers."""
    from kombu import Connection
    from kombu.pools import producers

    from trackable.conf import settings

    conn = Connection(settings.broker_url, transport_options=baseline_options())
    pool = producers[conn]

    def publish() -> None:
        with pool.acquire(block=True) as producer:
            producer.publish(
                body,
                routing_key=queue_name,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                retry=False,
            )

    return publish


def held_publisher(body: bytes, queue_name: str):
    """Return a function that publishes `body` once through one kombu Producer kept open (no pool)."""
    from kombu import Connection, Producer

    from trackable.conf import settings

    conn = Connection(settings.broker_url, transport_options=baseline_options())
    producer = Producer(conn.default_channel)

    def publish() -> None:
        producer.publish(body, routing_key=queue_name, content_type="application/json", content_encoding="utf-8",
                         delivery_mode=2, retry=False)

    return publish


def threaded_rate(fn, threads: int, calls: int) -> float:
    """Return events/s of `threads` threads each calling `fn` `calls` times."""
    from django.db import connection

    def work() -> None:
        for _ in range(calls):
            fn()
        connection.close()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return threads * calls / (time.perf_counter() - started)


BUFFER = {"TRACKABLE_BUFFER_MAX_EVENTS": 1000, "TRACKABLE_BUFFER_MAX_DELAY": 1.0}


def per_call_figures(args, article) -> None:
    """Print the cost of one send, unbuffered and buffered, against bare kombu publishes."""
    from django.test import override_settings

    from tests.testapp.models import ArticleTotals
    from trackable import buffer, messages, transport
    from trackable.messaging import IncrementMessage, send_increment_message

    label = ArticleTotals._meta.label_lower
    body = messages.build(IncrementMessage(None, article, "downloads").build()[label])
    bare = bare_publisher(body, transport.queue_name(label))
    held = held_publisher(body, transport.queue_name(label))
    send = lambda: send_increment_message(None, article, "downloads")  # noqa: E731
    bare(), held(), send()  # connect and declare outside the timings
    from trackable.conf import settings

    confirms = bool(settings.PUBLISH_CONFIRMS) and settings.broker_url.startswith("amqp")
    common = {"broker": args.broker, "runs": args.runs, "publish_confirms": confirms}

    def triple() -> tuple[float, float, float]:
        timings = per_call(send, args.calls), per_call(bare, args.calls), per_call(held, args.calls)
        purge_queues()
        return timings

    runs = [triple() for _ in range(args.runs)]
    median = lambda i: statistics.median(r[i] for r in runs)  # noqa: E731
    emit("P1 send_increment_message per call", median(0), "µs", "bare pooled kombu publish", median(1),
         calls=args.calls, **common)
    emit("P1 send_increment_message per call (vs a held producer)", median(0), "µs",
         "kombu publish on one held producer, no pool", median(2), calls=args.calls, **common)
    with override_settings(**BUFFER):
        buffered = median_of(args.runs, lambda: per_call(send, args.calls * 10))
        buffer.flush()
    purge_queues()
    emit("P1 buffered send_increment_message per event", buffered, "µs", "bare pooled kombu publish",
         median(1), calls=args.calls * 10, **common)


def thread_figures(args, article) -> None:
    """Print events/s of threads hitting one object, sent (unbuffered, buffered) against SQL UPDATEs."""
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import F
    from django.test import override_settings

    from tests.testapp.models import Article, ArticleTotals
    from trackable import buffer
    from trackable.messaging import send_increment_message

    ct = ContentType.objects.get_for_model(Article)
    totals = ArticleTotals.objects.create(content_type=ct, object_id=article.pk)
    update = lambda: ArticleTotals.objects.filter(pk=totals.pk).update(downloads=F("downloads") + 1)  # noqa: E731
    send = lambda: send_increment_message(None, article, "downloads")  # noqa: E731
    n = args.calls // args.threads
    common = {"broker": args.broker, "runs": args.runs, "threads": args.threads}
    sql = median_of(args.runs, lambda: threaded_rate(update, args.threads, n))
    ours = median_of(args.runs, lambda: threaded_rate(send, args.threads, n))
    purge_queues()
    emit(f"P1 {args.threads} threads, one hot object: send_increment_message", ours, "events/s",
         "UPDATE n = n + 1 per hit (PostgreSQL)", sql, **common)
    with override_settings(**BUFFER):
        ours = median_of(args.runs, lambda: threaded_rate(send, args.threads, n * 10))
        buffer.flush()
    purge_queues()
    emit(f"P1 {args.threads} threads, one hot object: buffered send_increment_message", ours, "events/s",
         "UPDATE n = n + 1 per hit (PostgreSQL)", sql, **common)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    setup(args.broker)
    from tests.testapp.models import Article

    article = Article.objects.create(title="hot")
    per_call_figures(args, article)
    thread_figures(args, article)


if __name__ == "__main__":
    main()
