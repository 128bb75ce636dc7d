"""Unique visitors: accuracy 1k–10M, union of 365 days, storage per row, request-path and fold costs.

    python bench/bench_uniques.py --broker amqp [--runs 5] [--max 10000000]

Each figure is printed as a JSON line with its baseline measured in the same run (rounds interleaved),
their ratio and the load average: a send with a UniqueVisitors field against one without (and the
relay's work per send, timed apart); the fold of events carrying visitors against the same events
without; uniques() over 365 daily rows against the 20 ms target and against the text-format read it
replaced; the bytes a row takes in PostgreSQL with and without its sketch.
"""
from __future__ import annotations

import random
import statistics
import time
from datetime import datetime, timedelta, timezone

from common import emit, parser, purge_queues, setup

NOON = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)


def accuracy(max_n: int) -> None:
    """Print the relative error of single sketches and of unions of 365 daily sketches against the bound."""
    from trackable import sketches

    single_bound, union_bound = sketches.relative_error(unioned=False), sketches.relative_error()
    n = 1000
    while n <= max_n:
        trials = 5 if n <= 100_000 else 1
        errors = []
        for t in range(trials):
            base = t * 10 * max_n
            sketch = sketches.new_sketch(f"{base + i:016x}" for i in range(n))
            errors.append(abs(sketches.estimate(sketch).estimate - n) / n)
        emit(f"relative error, one sketch of {n} visitors (max of {trials})", max(errors), "", "95% bound", union_bound)
        if n >= 3650:
            per_day = n // 365  # disjoint days: the union must find n, not any day's count
            days = [
                sketches.new_sketch(f"{d * per_day + i:016x}" for i in range(per_day)).serialize_compact() for d in range(365)
            ]
            got = sketches.estimate(sketches.union(days)).estimate
            emit(f"relative error, union of 365 days totalling {per_day * 365}", abs(got - per_day * 365) / (per_day * 365),
                 "", "95% bound", union_bound)
        n *= 10
    print(f"# DataSketches bounds at 95%: one sketch {single_bound:.4f}, union {union_bound:.4f}")


def storage_and_union() -> None:
    """Print bytes per row by visitors, and the time to union 365 dense daily sketches (bytes from the database)."""
    from trackable import sketches

    for n in (1, 10, 100, 1000, 10_000, 1_000_000):
        size = len(sketches.new_sketch(f"{i:016x}" for i in range(n)).serialize_compact())
        emit(f"sketch bytes per row, {n} visitors", size, "B", "bytes of one 8-byte counter", 8)
    days = [sketches.new_sketch(f"{d:04d}{i:012x}" for i in range(20_000)).serialize_compact() for d in range(365)]
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        sketches.estimate(sketches.union(days))
        timings.append((time.perf_counter() - started) * 1000)
    emit("union of 365 daily sketches (20k visitors each) + estimate", statistics.median(timings), "ms", "target", 20.0)
    _union_from_database(days)


def _union_from_database(days: list[bytes], rounds: int = 20) -> None:
    """Print uniques() of one object over 365 daily rows, against the same union read in the text format.

    The baseline is what uniques() did before sketches were read in PostgreSQL's binary format: the
    ORM's values_list (each sketch sent as hex) and the same union; rounds interleaved.
    """
    from django.contrib.contenttypes.models import ContentType

    from tests.testapp.models import Page, PageData
    from trackable import sketches, uniques

    page, bare = Page.objects.create(path="/year"), Page.objects.create(path="/bare")
    ct = ContentType.objects.get_for_model(Page)
    start = NOON.replace(hour=0) - timedelta(days=365)
    end = start + timedelta(days=365)
    grown = []
    for parent, sketch_of in ((bare, lambda d: None), (page, days.__getitem__)):
        before = _table_bytes(PageData)
        PageData.objects.bulk_create(
            [PageData(content_type=ct, object_id=parent.pk, collected_during=start + timedelta(days=d), views=1,
                      visitors=sketch_of(d)) for d in range(365)]
        )
        grown.append((_table_bytes(PageData) - before) / 365)
    emit("PostgreSQL bytes per row, 365 rows with dense sketches (heap, TOAST, indexes)", grown[1], "B",
         "the same rows without sketches", grown[0])
    rows = PageData.objects.filter(content_type=ct, object_id=page.pk, collected_during__gte=start, collected_during__lt=end)

    def text_format() -> sketches.Estimate:
        return sketches.estimate(sketches.union(rows.values_list("visitors", flat=True)))

    assert uniques.uniques(page, "visitors", start, end) == text_format()  # the same answer, only faster
    timings: dict[str, list[float]] = {"uniques": [], "text": [], "fetch": [], "fetch_text": []}
    for _ in range(rounds):
        for name, call in (
            ("uniques", lambda: uniques.uniques(page, "visitors", start, end)),
            ("text", text_format),
            ("fetch", lambda: uniques.fetch_rows(rows.values_list("visitors"))),
            ("fetch_text", lambda: list(rows.values_list("visitors", flat=True))),
        ):
            started = time.perf_counter()
            call()
            timings[name].append((time.perf_counter() - started) * 1000)
    median = {name: statistics.median(values) for name, values in timings.items()}
    emit("uniques() of one object over 365 daily rows (query + union)", median["uniques"], "ms", "target", 20.0,
         fetch_only_ms=round(median["fetch"], 3))
    emit("uniques() of one object over 365 daily rows (query + union)", median["uniques"], "ms",
         "the same union fetched by the ORM in the text format (before)", median["text"],
         fetch_only_ms=round(median["fetch_text"], 3))


def _table_bytes(model: type) -> int:
    """Return the bytes of a table with its TOAST table and indexes (after a VACUUM, so pages are counted)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {model._meta.db_table}")
        cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
        return int(cursor.fetchone()[0])


def request_path(rounds: int) -> None:
    """Print the µs of build() and send() with a UniqueVisitors field against a data model without one.

    send() is the request path: it journals the events and returns. The relay that publishes them
    runs in a background thread of the same process; here it runs only when flushed (its interval is
    set to an hour), so its work is timed apart, per send, instead of landing in whichever round is
    running when it wakes. Each round times both data models, in alternating order.
    """
    from django.test import override_settings
    from django.test.client import RequestFactory

    from tests.testapp.models import Article, Page
    from trackable import relay, visitors
    from trackable.messaging import IncrementMessage

    override_settings(TRACKABLE_JOURNAL_RELAY_INTERVAL=3600).enable()
    visitors.load_salts()
    page, article = Page.objects.create(path="/p"), Article.objects.create(title="a")
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    requests = [
        RequestFactory().get("/", REMOTE_ADDR=f"10.0.{i // 250}.{i % 250}", HTTP_USER_AGENT=agent) for i in range(1000)
    ]
    variants = ((page, "views"), (article, "impressions"))
    for what, calls in (("build", 20_000), ("send", 10_000)):
        times: dict[str, list[float]] = {"views": [], "impressions": []}
        relayed: dict[str, list[float]] = {"views": [], "impressions": []}
        for r in range(rounds + 1):  # round 0 warms up (segment, connection, caches) and is not counted
            for obj, field in variants if r % 2 else variants[::-1]:
                relay.flush(60)
                started = time.perf_counter()
                for i in range(calls):
                    message = IncrementMessage(requests[i % 1000], obj, field)
                    message.build() if what == "build" else message.send()
                elapsed = time.perf_counter() - started
                if what == "send":
                    started = time.perf_counter()
                    relay.flush(60)
                    if r:
                        relayed[field].append((time.perf_counter() - started) / calls * 1e6)
                if r:
                    times[field].append(elapsed / calls * 1e6)
            purge_queues()
        with_u, without = statistics.median(times["views"]), statistics.median(times["impressions"])
        label = "build()" if what == "build" else "send() into the journal (the request path)"
        emit(f"{label} with a UniqueVisitors field", with_u, "µs", "without", without)
        if what == "send":
            relay_u, relay_0 = statistics.median(relayed["views"]), statistics.median(relayed["impressions"])
            emit("relay (background thread) per send with a UniqueVisitors field", relay_u, "µs", "without", relay_0)
            emit("send() + its relay, per send, with a UniqueVisitors field", with_u + relay_u, "µs", "without",
                 without + relay_0)


def fold_rates(rounds: int, events: int) -> None:
    """Print fold events/s of events carrying visitors against the same events without them.

    Two shapes of the same events: 100 a message with one visitor hash each (a baseline any producer
    could send), and as the relay sends them (trackable.relay.batch_messages over batches of 10 000:
    summed per object and minute, a key's visitors in one list). The rate counts the events sent, not
    the events on the wire; a fold stops once it took every message (no idle wait is timed).
    """
    import fill as filler

    from tests.testapp.models import Page, PageData
    from trackable import messages, relay
    from trackable.folding import process_messages
    from trackable.models import FoldedMessage

    filler.DATA_LABEL = "testapp.pagedata"  # fill() puts bodies on this data model's queue

    pages = [Page.objects.create(path=f"/f{i}").pk for i in range(1000)]
    rng = random.Random(7)
    ts = int(NOON.timestamp() * 1000)
    spread = [
        (rng.choice(pages), ts - rng.randrange(5) * 86_400_000, f"{rng.randrange(events // 3):016x}")
        for _ in range(events)
    ]

    def bodies(with_visitors: bool, relayed: bool) -> list[bytes]:
        sent = [
            ["testapp.pagedata", "testapp.page", pk, "views", 1, t, *([{"u": u}] if with_visitors else [])]
            for pk, t, u in spread
        ]
        if not relayed:
            return [messages.build(sent[start : start + 100]) for start in range(0, events, 100)]
        return [
            messages.build(chunk, message_id)
            for start in range(0, events, 10_000)
            for _, message_id, chunk in relay.batch_messages(f"{start:024x}", start, start + 1, sent[start : start + 10_000])
        ]

    for relayed in (False, True):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for r in range(rounds):
            for with_visitors in (True, False) if r % 2 else (False, True):
                PageData.objects.all().delete()
                FoldedMessage.objects.all().delete()
                batch = bodies(with_visitors, relayed)
                filler.fill(batch)
                started = time.perf_counter()
                result = process_messages([PageData], idle_timeout=5.0, max_messages=len(batch))
                elapsed = time.perf_counter() - started
                assert result.messages == len(batch), result
                rates[with_visitors].append(events / elapsed)
        shape = "as the relay sends them" if relayed else "100 events a message, one visitor hash each"
        emit(f"fold events/s with visitors ({shape})", statistics.median(rates[True]), "events/s",
             "the same events without visitors", statistics.median(rates[False]))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--max", type=int, default=10_000_000, help="largest cardinality of the accuracy sweep")
    p.add_argument("--events", type=int, default=50_000, help="events folded per fold round")
    p.add_argument("--only", choices=["accuracy", "storage", "request", "fold"], help="run one part only")
    args = p.parse_args()
    setup(args.broker)
    parts = {"accuracy": lambda: accuracy(args.max), "storage": storage_and_union,
             "request": lambda: request_path(args.runs), "fold": lambda: fold_rates(args.runs, args.events)}
    for name, part in parts.items():
        if args.only in (None, name):
            part()


if __name__ == "__main__":
    main()
