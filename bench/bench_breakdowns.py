"""Breakdowns: request-path cost, fold rate, top-10 referrers of a month over 1M rows, table growth.

    python bench/bench_breakdowns.py --broker amqp [--runs 5] [--rows 1000000] [--events 1000000]

Each figure is printed as a JSON line with its baseline measured in the same run (rounds interleaved)
and their ratio: a send counted in three breakdowns (tests.testapp's Guide, four dimensions of built-in
sources; and Story, five dimensions, one of a custom source) against a send to a plain data model; the fold of events
of a breakdown against the same events of a plain data model; top_values() of a month against the
50 ms target; and the rows left by 1M events with random referrers against one row per event.
"""
from __future__ import annotations

import gc
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

from common import emit, parser, purge_queues, setup

UTC = timezone.utc
NOON = datetime(2026, 3, 10, 12, tzinfo=UTC)
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
]


def _requests(n: int, start: int = 0) -> list:
    """Return the requests of visits start … start + n - 1, each header a string of its own (as a server makes them)."""
    from django.test.client import RequestFactory

    rng = random.Random(7 + start)
    factory = RequestFactory()
    out = []
    for i in range(start, start + n):
        referrer = rng.choice([
            f"https://www.google.com/search?q=tide+tables+{i % 50}",
            f"https://news{i % 200}.example/article/{i}",
            "https://bench.example/",
            None,
        ])
        meta = {
            "HTTP_USER_AGENT": _fresh(rng.choice(AGENTS)), "HTTP_HOST": _fresh("bench.example"),
            "REMOTE_ADDR": f"10.0.{i // 250}.{i % 250}",
        }
        if referrer:
            meta["HTTP_REFERER"] = _fresh(referrer)
        out.append(factory.get(f"/stories/{i % 100}/", **({"plan": "pro"} if i % 3 == 0 else {}), **meta))
    return out


def _fresh(text: str) -> str:
    """Return a new string object equal to `text`, its hash not computed yet: a served request's headers are new."""
    return text.encode().decode()


BLOCK = 250  # calls of one series before the next series' turn


def request_path(rounds: int) -> None:
    """Print the µs of send() counted in three breakdowns against send() to one plain data model.

    Three breakdown sets: tests.testapp's Guide (GuideReferrers, GuideSearches, GuideClients: four
    dimensions, all of built-in sources — the issue's figure), and Story, whose StoryClients adds a
    custom source (``plan_of``, which reads ``request.GET``) — alone, and when the view has read
    ``request.GET`` already (the query string's parse, most of that source's cost, is then the view's).

    Every call gets a request object of its own, made (before the clock starts) just before its block
    of calls, as a server makes each request just before its view: its headers are new strings, in the
    processor's caches. Nothing a source parsed for an earlier call (the query string, the referrer) is
    reused, and each round's visits are new (the pages referring once are new pages). ``build()`` is
    timed on the clock. ``send()`` is timed twice: the p50 of each call on the clock (what the view waits for: the
    request path alone, the relay thread parked), and the process's CPU (all threads) of the sends and
    of the relay of what they journaled: the relay thread, which computes the breakdowns' values from
    what the send recorded, does that work in the web process too. The series take turns by blocks of
    BLOCK calls (each send block followed by its relay), so a slow spell of the machine weighs on all.
    """
    from django.test import override_settings

    from tests.testapp.models import Article, Guide, Story
    from trackable import relay
    from trackable.messaging import IncrementMessage

    guide, story, article = Guide.objects.create(title="g"), Story.objects.create(title="s"), Article.objects.create(title="a")
    for request in _requests(1000, 10**7):  # warm the ua-parser cache and the routes (visits no round makes)
        IncrementMessage(request, story, "views").build()
        IncrementMessage(request, guide, "views").build()
    series = {  # name → (object, field, whether the view read request.GET)
        "three breakdowns of built-in sources (4 dimensions)": (guide, "views", False),
        "plain": (article, "impressions", False),
        "three breakdowns, one dimension of a custom source reading request.GET (5 dimensions)": (story, "views", False),
        "the same, request.GET read by the view": (story, "views", True),
    }
    with override_settings(TRACKABLE_JOURNAL_RELAY_INTERVAL=3600):  # the relay thread waits: each round relays its own sends
        IncrementMessage(None, article, "impressions").send()
        relay.flush(60)
        for what, calls in (("build", 10_000), ("send", 5_000)):
            costs: dict[str, list[float]] = {name: [] for name in series}
            latency: dict[str, list[float]] = {name: [] for name in series}
            for round_ in range(rounds):
                spent = dict.fromkeys(series, 0.0)
                waits: dict[str, list[float]] = {name: [] for name in series}
                gc.collect()
                clock = time.perf_counter if what == "build" else time.process_time
                for block in range(0, calls, BLOCK):  # the series take turns, a block each: a noisy core's slow
                    for name, (obj, field, parsed) in series.items():  # spells fall on all of them alike
                        requests = _requests(BLOCK, round_ * calls + block)  # made just before their sends
                        if parsed:
                            for request in requests:
                                request.GET  # noqa: B018 - the view read its query string
                        gc.freeze()  # the prepared requests are not the collector's work (a served request is gone)
                        started = clock()
                        for request in requests:
                            message = IncrementMessage(request, obj, field)
                            if what == "build":
                                message.build()
                            else:
                                begun = time.perf_counter()
                                message.send()
                                waits[name].append(time.perf_counter() - begun)
                        if what == "send":
                            relay.flush(60)  # this block's events relayed: their CPU is this series'
                        spent[name] += clock() - started
                gc.unfreeze()
                for name in series:
                    costs[name].append(spent[name] / calls * 1e6)
                    if what == "send":
                        latency[name].append(statistics.median(waits[name]) * 1e6)
            base = statistics.median(costs["plain"])
            unit = "µs" if what == "build" else "µs of CPU, relay included"
            for name in series:
                if name == "plain":
                    continue
                emit(f"{what}() counted in the totals and {name}", statistics.median(costs[name]), unit,
                     f"{what}() to one plain data model", base)
                if what == "send":  # what the view waits for
                    emit(f"send() counted in the totals and {name}, p50 per call", statistics.median(latency[name]), "µs",
                         "send() to one plain data model, p50 per call", statistics.median(latency["plain"]))
    purge_queues()


def fold_rates(rounds: int, events: int) -> None:
    """Print fold events/s of a breakdown's events (random referrers from a pool) against a plain data model's."""
    import fill as filler

    from tests.testapp.models import Story, StoryData, StoryReferrers
    from trackable import messages
    from trackable.folding import process_messages
    from trackable.models import FoldedMessage

    stories = [Story.objects.create(title=f"f{i}").pk for i in range(1000)]
    rng = random.Random(7)
    ts = int(NOON.timestamp() * 1000)
    # Referrers as skewed as a site's: a Zipf law over 300 values ("" — no referrer — first, then search engines …).
    pool = ["", "google.com", "(internal)", "bing.com", "duckduckgo.com"] + [f"site{i}.example" for i in range(295)]
    weights = [1 / (rank + 1) for rank in range(len(pool))]
    referrers = rng.choices(pool, weights, k=events)
    spread = [(rng.choice(stories), ts - rng.randrange(5) * 86_400_000, referrers[i]) for i in range(events)]

    def bodies(label: str) -> list[bytes]:
        out = []
        for start in range(0, events, 100):  # 100 events a message, like a relay batch
            out.append(messages.build([
                [label, "testapp.story", pk, "views", 1, t, *([{"d": {"referrer": r}}] if label.endswith("referrers") else [])]
                for pk, t, r in spread[start:start + 100]
            ]))
        return out

    rates: dict[str, list[float]] = {"testapp.storyreferrers": [], "testapp.storydata": []}
    models = {"testapp.storyreferrers": StoryReferrers, "testapp.storydata": StoryData}
    for _ in range(rounds):
        for label, model in models.items():
            model.objects.all().delete()
            FoldedMessage.objects.all().delete()
            filler.DATA_LABEL = label
            filler.fill(bodies(label))
            started = time.perf_counter()
            result = process_messages([model], idle_timeout=2.0)
            rates[label].append(result.events / (time.perf_counter() - started))
    counts = {label: model.objects.count() for label, model in models.items()}
    emit("fold events/s of a breakdown (300 Zipf-distributed referrers, 1000 objects, 5 days; 100 events a message)",
         statistics.median(rates["testapp.storyreferrers"]), "events/s",
         "the same events to a plain data model", statistics.median(rates["testapp.storydata"]),
         rows=counts["testapp.storyreferrers"], plain_rows=counts["testapp.storydata"])


def _fill_rows(rows: int, objects: int, hosts: int) -> tuple[datetime, int]:
    """Insert `rows` StoryReferrers rows over a year (one SQL statement); return (first day, content type id)."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from tests.testapp.models import Story, StoryReferrers

    ct = ContentType.objects.get_for_model(Story).pk
    first = datetime(2025, 1, 1, tzinfo=UTC)
    table = StoryReferrers._meta.db_table
    # Row i: object i % objects, day (i // objects) % 365, a host drawn from a skewed pool; the unique key
    # (object, day, host) is kept by numbering the hosts of each (object, day) apart.
    per_key = max(1, rows // (objects * 365)) + 1
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (content_type_id, object_id, collected_during, referrer, views, spider_views)
            SELECT %s, i %% %s, %s::timestamptz + ((i / %s) %% 365) * interval '1 day',
                   'site' || ((i / (%s * 365)) %% %s + (floor(random() * random() * %s))::int * %s) || '.example',
                   1 + floor(random() * 20)::int, 0
            FROM generate_series(0, %s - 1) AS i
            ON CONFLICT DO NOTHING
            """,
            [ct, objects, first, objects, objects, per_key, hosts, per_key, rows],
        )
        cursor.execute(f"VACUUM ANALYZE {table}")
    return first, ct


def top_referrers(rows: int, runs: int) -> None:
    """Print the ms of top_values() of a month (the whole model, and one object) over a table of `rows` rows."""
    from tests.testapp.models import Story, StoryReferrers
    from trackable.breakdowns import top_values

    first, _ = _fill_rows(rows, objects=1000, hosts=5000)
    total_rows = StoryReferrers.objects.count()
    start, end = first + timedelta(days=31), first + timedelta(days=59)  # February
    in_month = StoryReferrers.objects.filter(collected_during__gte=start, collected_during__lt=end).count()
    story = Story(pk=7)
    for label, target in (("the whole model", Story), ("one object", story)):
        timings = []
        for _ in range(runs * 4):
            started = time.perf_counter()
            top_values(target, "referrer", "views", start, end, n=10)
            timings.append((time.perf_counter() - started) * 1000)
        emit(f"top_values() of a month, {label} ({total_rows} rows, {in_month} in the month)",
             statistics.median(timings), "ms", "target", 50.0)


def table_growth(events: int) -> None:
    """Print the rows and bytes left by `events` events with random referrers (10 objects, one day) after a fold."""
    import fill as filler
    from django.db import connection

    from tests.testapp.models import StoryReferrers
    from trackable import messages
    from trackable.conf import settings
    from trackable.folding import process_messages

    StoryReferrers.objects.all().delete()
    rng = random.Random(11)
    ts = int(NOON.timestamp() * 1000)
    filler.DATA_LABEL = "testapp.storyreferrers"
    bodies = []
    for start in range(0, events, 1000):
        bodies.append(messages.build([
            ["testapp.storyreferrers", "testapp.story", rng.randrange(10), "views", 1, ts,
             {"d": {"referrer": f"{rng.getrandbits(64):016x}.example"}}]
            for _ in range(min(1000, events - start))
        ]))
    filler.fill(bodies)
    started = time.perf_counter()
    result = process_messages([StoryReferrers], idle_timeout=2.0)
    seconds = time.perf_counter() - started
    rows = StoryReferrers.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [StoryReferrers._meta.db_table])
        size = cursor.fetchone()[0]
    total = sum(StoryReferrers.objects.values_list("views", flat=True))
    emit(f"rows after {result.events} events with random referrers (10 objects, 1 day, cap "
         f"{settings.BREAKDOWN_MAX_VALUES})", rows, "rows", "one row per event (no cap)", events,
         bytes=size, views_total=total, fold_events_per_s=round(result.events / seconds))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the top-referrers table")
    p.add_argument("--events", type=int, default=1_000_000, help="events of the table-growth fold")
    p.add_argument("--fold-events", type=int, default=50_000, help="events folded per fold round")
    p.add_argument("--only", choices=["request", "fold", "top", "growth"], help="run one part only")
    args = p.parse_args()
    setup(args.broker)
    parts = {"request": lambda: request_path(args.runs), "fold": lambda: fold_rates(args.runs, args.fold_events),
             "top": lambda: top_referrers(args.rows, args.runs), "growth": lambda: table_growth(args.events)}
    for name, part in parts.items():
        if args.only in (None, name):
            part()


if __name__ == "__main__":
    main()
