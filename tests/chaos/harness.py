"""Kill folding workers with SIGKILL while they work; then check 0 events lost and 0 counted twice.

Used by tests/test_chaos.py (small) and by hand for the long version::

    TRACKABLE_TEST_DB=postgres TRACKABLE_TEST_BROKER=amqp PYTHONPATH=. \\
        python -m tests.chaos.harness --events 100000 --kills 12

The database is a throwaway test database; the broker the one TRACKABLE_TEST_BROKER names.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = 20
DAYS = 3


def publish(events: int, seed: int) -> Counter:
    """Publish `events` single-event messages over OBJECTS articles × 2 fields × DAYS days."""
    from tests.testapp.models import Article
    from trackable import messages, transport

    rng = random.Random(seed)
    pks = [Article.objects.create(title=f"chaos {i}").pk for i in range(OBJECTS)]
    now_ms = int(time.time() * 1000)
    expected: Counter = Counter()
    for _ in range(events):
        pk, field = rng.choice(pks), rng.choice(["impressions", "click_throughs"])
        ts = now_ms - rng.randint(0, DAYS * 86_400_000 - 1)
        transport.publish(
            messages.build([("testapp.articletrackabledata", "testapp.article", pk, field, 1, ts)]),
            "testapp.articletrackabledata",
        )
        expected[(pk, _day(ts), field)] += 1
    return expected


def _day(ts_ms: int):
    from datetime import datetime, timezone

    from trackable.buckets import DAY, bucket_start
    from trackable.conf import settings

    return bucket_start(datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc), DAY, settings.time_zone)


def counted() -> Counter:
    from tests.testapp.models import ArticleTrackableData

    out: Counter = Counter()
    for pk, day, imp, clicks in ArticleTrackableData.objects.values_list(
        "object_id", "collected_during", "impressions", "click_throughs"
    ):
        out[(pk, day, "impressions")] += imp
        out[(pk, day, "click_throughs")] += clicks
    return +out


def kill_workers(kills: int, random_kills: bool, seed: int, log) -> dict:
    """Start workers and kill them `kills` times; return what happened."""
    rng = random.Random(seed)
    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", PYTHONPATH=str(ROOT))
    # Random kills hit any moment; the after-commit hook makes sure some land between commit and ack.
    env["TRACKABLE_CHAOS_KILL_AFTER_COMMIT"] = "0.15" if random_kills else "1"
    done, after_commit, timed = 0, 0, 0
    while done < kills:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            worker.wait(timeout=rng.uniform(1.0, 3.0) if random_kills else 60)
        except subprocess.TimeoutExpired:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            timed += 1
        else:
            if worker.returncode == -signal.SIGKILL:
                after_commit += 1
            else:
                raise RuntimeError(f"worker exited with {worker.returncode}; see the log")
        done += 1
    return {"kills": done, "kills_between_commit_and_ack": after_commit, "kills_at_random_moments": timed}


def final_fold(redelivery_wait: float) -> dict:
    """Fold what is left, waiting long enough for unacked messages to come back."""
    from trackable.folding import process_messages

    totals = {"messages": 0, "duplicates": 0, "malformed": 0}
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < redelivery_wait:
        result = process_messages(idle_timeout=0.5)
        for key in totals:
            totals[key] += getattr(result, key)
        if result.messages or result.duplicates:
            quiet_since = time.monotonic()
    return totals


def run(events: int, kills: int, random_kills: bool, seed: int, log) -> dict:
    from django.conf import settings

    started = time.monotonic()
    expected = publish(events, seed)
    killed = kill_workers(kills, random_kills, seed, log)
    # A dead fold's messages come back at once (AMQP, filesystem://) or after its lease (Redis).
    from trackable.redisqueue import LEASE

    wait = 3.0 + (LEASE if settings.TEST_BROKER == "redis" else 0.0)
    final = final_fold(wait)
    got = counted()
    return {
        "broker": settings.TEST_BROKER,
        "database": settings.TEST_DB,
        "events_sent": events,
        "events_counted": sum(got.values()),
        "lost": sum((expected - got).values()),
        "double": sum((got - expected).values()),
        "keys": len(expected),
        **killed,
        "final_fold": final,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--after-commit-only", action="store_true", help="Kill only between commit and ack (filesystem://).")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        from trackable.sites import site  # noqa: F401 - the registry is filled by autodiscovery

        with open(ROOT / "tests" / "chaos" / "last-run.log", "w") as log:
            report = run(args.events, args.kills, not args.after_commit_only, args.seed, log)
        print(json.dumps(report))
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
