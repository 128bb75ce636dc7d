"""Benchmark spider filtering: per-check cost (cached, uncached, both engines) and accuracy.

Run from the repository root:  python bench/bench_spiders.py [--rounds 7]

Each timing is the median over rounds of (time for one pass over the corpus) / (user agents in it),
printed as a JSON line with the baseline measured in the same run (a precompiled `re` search of one
short pattern, "bot", over the same user agents) and the ratio of the two. Accuracy uses the labelled
samples shipped in tests/data/user-agents/ (dev-bots.txt, dev-browsers.txt; see the README there).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "user-agents"
sys.path.insert(0, str(REPO))
BASELINE = re.compile("bot").search  # a bare search of one short pattern


def setup_django() -> None:
    """Configure a minimal project (in-memory SQLite, migrated: the shipped Spider rows are installed)."""
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.admin", "trackable"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        TRACKABLE_USER_AGENT_FILTERING=True,
        TRACKABLE_SPIDER_REFRESH_INTERVAL=0,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seconds_per_call(fn, items: list[str]) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - started) / len(items)


def measure(figure: str, fn, items: list[str], rounds: int, **extra) -> None:
    """Print the median per-call time of fn over items, the baseline's in the same rounds, and their ratio.

    Each round times the baseline and fn back to back over the same items, so both see the same load;
    the ratio is the median of the per-round ratios.
    """
    pairs = [(seconds_per_call(BASELINE, items), seconds_per_call(fn, items)) for _ in range(rounds)]
    value = statistics.median(v for _, v in pairs)
    baseline = statistics.median(b for b, _ in pairs)
    ratio = statistics.median(v / b for b, v in pairs)
    print(json.dumps({"figure": figure, "us": round(value * 1e6, 3), "baseline_us": round(baseline * 1e6, 3),
                      "ratio": round(ratio, 2), "user_agents": len(items), **extra}))


def hit_rate(matcher) -> float:
    info = matcher.cache_info()
    return round(info.hits / max(1, info.hits + info.misses), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    setup_django()
    from trackable import spiders
    from trackable.models import Spider

    bots = (CORPUS / "dev-bots.txt").read_text().splitlines()
    browsers = (CORPUS / "dev-browsers.txt").read_text().splitlines()
    corpus = bots + browsers
    # Cached figures replay a working set that fits the LRU cache (TRACKABLE_SPIDER_CACHE_SIZE, 4096).
    working_set = corpus[:: max(1, len(corpus) // 2000)][:2000]
    rows = list(Spider.objects.filter(is_active=True).values_list("pattern", flat=True))
    spiders.refresh()

    for engine in ("re2", "re"):
        started = time.perf_counter()
        matcher = spiders.build_matcher(rows, engine=engine)
        build_ms = round((time.perf_counter() - started) * 1e3, 1)
        matcher._match(corpus[0])
        # The matching behind the cache: every user agent a miss.
        measure(f"uncached check ({engine})", matcher._match, corpus, args.rounds, patterns=matcher.patterns, build_ms=build_ms)
        measure(f"uncached check, bots only ({engine})", matcher._match, bots, args.rounds)
        measure(f"uncached check, browsers only ({engine})", matcher._match, browsers, args.rounds)
        for ua in working_set:
            matcher(ua)
        measure(f"cached check, matcher call ({engine})", matcher, working_set, args.rounds)

    for ua in working_set:  # build this process's matcher (the default engine) and fill its cache
        spiders.is_spider(ua)
    measure("cached check, is_spider()", spiders.is_spider, working_set, args.rounds,
            engine=spiders.get_matcher().engine)
    print(
        json.dumps({"figure": "cache hit rate of is_spider() over the cached runs", "hit_rate": hit_rate(spiders.get_matcher())})
    )

    matcher = spiders.get_matcher()
    reference = spiders.SpiderMatcher(spiders.dataset_patterns())
    for name, m in (("shipped: dataset + Spider rows + human exceptions", matcher), ("crawler-user-agents alone", reference)):
        flagged_bots = sum(map(m, bots))
        flagged_browsers = sum(map(m, browsers))
        print(json.dumps({"figure": f"accuracy, {name}", "recall": round(flagged_bots / len(bots), 4),
                          "bots_flagged": f"{flagged_bots}/{len(bots)}",
                          "false_positive_rate": round(flagged_browsers / len(browsers), 4),
                          "browsers_flagged": f"{flagged_browsers}/{len(browsers)}"}))


if __name__ == "__main__":
    main()
