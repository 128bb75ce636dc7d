"""P1, the request path: send_increment_message (journal, and direct publish) against os.write and kombu.

    python bench/bench_publish.py --broker amqp
    python bench/bench_publish.py --broker redis

Per-send p50/p99 of the default send (the journal) against a bare os.write of the same record bytes
and against the direct publish of TRACKABLE_JOURNAL = False, rounds interleaved; then threads hitting
one object against SQL UPDATEs. Prints one JSON line per figure: the value, the baseline measured in
the same run, and their ratio.
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


def latencies(fn, calls: int) -> list[float]:
    """Return the µs of each of `calls` calls of `fn`."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(calls):
        started = clock()
        fn()
        out.append((clock() - started) / 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0–100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def raw_writer(record: bytes):
    """Return a function that appends `record` to a file with one os.write (the journal's floor)."""
    import os
    import tempfile

    fd = os.open(os.path.join(tempfile.mkdtemp(), "floor"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return lambda: os.write(fd, record)


def per_call_figures(args, article) -> None:
    """Print per-send p50/p99: the journal against os.write, direct publish and bare kombu publishes."""
    from django.test import override_settings

    from tests.testapp.models import ArticleTotals
    from trackable import journal, messages, relay, transport
    from trackable.messaging import IncrementMessage, send_increment_message

    label = ArticleTotals._meta.label_lower
    events = IncrementMessage(None, article, "downloads").build()[label]
    floor = raw_writer(journal.encode(events))
    bare = bare_publisher(messages.build(events), transport.queue_name(label))
    send = lambda: send_increment_message(None, article, "downloads")  # noqa: E731
    from trackable.conf import settings

    confirms = bool(settings.PUBLISH_CONFIRMS) and settings.broker_url.startswith("amqp")
    common = {"broker": args.broker, "runs": args.runs, "calls": args.calls, "publish_confirms": confirms}
    rounds: dict[str, list[tuple[float, float]]] = {"journal": [], "os.write": [], "direct": [], "kombu": []}

    def record(name: str, samples: list[float]) -> None:
        rounds[name].append((percentile(samples, 50), percentile(samples, 99)))

    send(), floor(), bare()  # open the segment, connect and declare outside the timings
    for _ in range(args.runs):
        record("journal", latencies(send, args.calls))
        record("os.write", latencies(floor, args.calls))
        relay.flush(60)
        with override_settings(TRACKABLE_JOURNAL=False):
            send()
            record("direct", latencies(send, args.calls))
        record("kombu", latencies(bare, args.calls))
        purge_queues()
    p = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for name, rs in rounds.items()}
    for i, q in enumerate(("p50", "p99")):
        emit(f"P1 send_increment_message {q} (journal)", p["journal"][i], "µs",
             "os.write of the same record", p["os.write"][i], **common)
        emit(f"P1 send_increment_message {q} (journal)", p["journal"][i], "µs",
             "send_increment_message with TRACKABLE_JOURNAL = False (direct publish)", p["direct"][i], **common)
        emit(f"P1 send_increment_message {q} (direct publish)", p["direct"][i], "µs",
             "bare pooled kombu publish", p["kombu"][i], **common)


def thread_figures(args, article) -> None:
    """Print events/s of threads hitting one object, sent (journal, direct publish) against SQL UPDATEs."""
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import F
    from django.test import override_settings

    from tests.testapp.models import Article, ArticleTotals
    from trackable import relay
    from trackable.messaging import send_increment_message

    ct = ContentType.objects.get_for_model(Article)
    totals = ArticleTotals.objects.create(content_type=ct, object_id=article.pk)
    update = lambda: ArticleTotals.objects.filter(pk=totals.pk).update(downloads=F("downloads") + 1)  # noqa: E731
    send = lambda: send_increment_message(None, article, "downloads")  # noqa: E731
    n = args.calls // args.threads
    common = {"broker": args.broker, "runs": args.runs, "threads": args.threads}
    sql = median_of(args.runs, lambda: threaded_rate(update, args.threads, n))
    ours = median_of(args.runs, lambda: threaded_rate(send, args.threads, n))
    relay.flush(60)
    purge_queues()
    emit(f"P1 {args.threads} threads, one hot object: send_increment_message (journal)", ours, "events/s",
         "UPDATE n = n + 1 per hit (PostgreSQL)", sql, **common)
    with override_settings(TRACKABLE_JOURNAL=False):
        direct = median_of(args.runs, lambda: threaded_rate(send, args.threads, n))
    purge_queues()
    emit(f"P1 {args.threads} threads, one hot object: send_increment_message (direct publish)", direct, "events/s",
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
