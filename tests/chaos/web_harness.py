"""The web kill harness: a real gunicorn site under load, its workers SIGKILLed, the fold killed, the broker cut.

Every request GETs /track/<n>/ for its own n, so the fold's rows tell how often each request was
counted. After a final fold: a request answered True must be counted exactly once; one answered
False or not at all (its worker was killed) at most once; nothing that was never requested. One
command (the database is a throwaway test database, the broker the one TRACKABLE_TEST_BROKER names)::

    TRACKABLE_TEST_DB=postgres TRACKABLE_TEST_BROKER=amqp PYTHONPATH=. \\
        python -m tests.chaos.web_harness --events 200000 --web-kills 20 --fold-kills 5 --outage 30

The web workers and the fold reach the broker through a TCP proxy (tests/proxy.py) that is cut for
--outage seconds; filesystem:// has no connection to cut, so there the outage is skipped and said so.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests import webload
from tests.chaos.harness import final_fold

ROOT = Path(__file__).resolve().parents[2]
URL_ENV = {"amqp": "TRACKABLE_TEST_AMQP_URL", "redis": "TRACKABLE_TEST_REDIS_URL"}


class FoldWorker:
    """`manage.py fold_trackable_messages --loop` (tests/chaos/fold_command.py), killed and restarted."""

    def __init__(self, env: dict[str, str], log, after_commit: bool) -> None:
        self.env, self.log, self.after_commit = dict(env), log, after_commit
        self.arm_file = Path(tempfile.mkdtemp(prefix="trackable-chaos-")) / "kill"
        if after_commit:
            self.env["TRACKABLE_CHAOS_ARM_FILE"] = str(self.arm_file)
        self.kills = Counter()
        self.crashes = self.pending = 0
        self.armed_at: float | None = None
        self.restart_at: float | None = None
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tests.chaos.fold_command", "0.5"], cwd=ROOT, env=self.env,
                                stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self, rng: random.Random) -> None:
        """Kill the worker now, or arm it to die after its next commit; tick() restarts it."""
        if self.armed_at is not None or self.restart_at is not None:
            self.pending += 1  # one kill at a time: this one follows the current one
            return
        if self.after_commit:
            self.arm_file.touch()
            self.armed_at = time.monotonic()
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills["at_random_moments"] += 1
        self.restart_at = time.monotonic() + rng.uniform(0.1, 1.0)

    def tick(self, rng: random.Random) -> None:
        """Move the kill in progress on; restart a killed worker, or one that exited by itself (counted)."""
        now = time.monotonic()
        if self.armed_at is not None:
            how = self.arm_file.with_name("kill.how")
            if self.proc.poll() is not None:
                self.kills[how.read_text() if how.exists() else "by_itself_while_armed"] += 1
                how.unlink(missing_ok=True)
            elif now - self.armed_at > 120:  # hung: kill it anyway (on filesystem:// it may lose its batch)
                self.arm_file.unlink(missing_ok=True)
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
                self.kills["forced_while_hung"] += 1
            else:
                return
            self.armed_at, self.restart_at = None, now + rng.uniform(0.1, 1.0)
        elif self.restart_at is not None:
            if now >= self.restart_at:
                self.proc, self.restart_at = self._start(), None
        elif self.proc.poll() is not None:
            self.crashes += 1
            self.proc = self._start()
        elif self.pending:
            self.pending -= 1
            self.kill(rng)

    def busy(self) -> bool:
        return self.armed_at is not None or self.restart_at is not None or self.pending > 0

    def stop(self) -> None:
        shutil.rmtree(self.arm_file.parent, ignore_errors=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # the final fold of the harness takes over
            self.proc.wait()


def schedule(n: int, rng: random.Random, lo: float = 0.05, hi: float = 0.95) -> list[float]:
    """Return `n` progress fractions, one in each of n equal slices of [lo, hi], at random within it."""
    width = (hi - lo) / max(n, 1)
    return [lo + width * (i + rng.random()) for i in range(n)]


def child_env(broker: str, proxy_url: str | None) -> dict[str, str]:
    """Return the environment of gunicorn and the fold: the test database, the broker via the proxy."""
    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", PYTHONPATH=str(ROOT))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if proxy_url:
        env[URL_ENV[broker]] = proxy_url
    return env


def drive(load: webload.Load, server: webload.Gunicorn, fold: FoldWorker, proxy, plan: dict, rng) -> dict:
    """Disturb the site while the load runs; return what was done."""
    web_at, fold_at = plan["web_kills"], plan["fold_kills"]
    outage_at, outage_seconds = plan["outage_at"], plan["outage"]
    done = {"web_kills": 0, "outage_seconds": 0.0}
    cut_since = None
    while not load.done():
        progress = load.progress.value / plan["events"]
        if web_at and progress >= web_at[0] and server.kill_worker(rng) is not None:  # else: again next tick
            web_at.pop(0)
            done["web_kills"] += 1
        if fold_at and progress >= fold_at[0]:
            fold_at.pop(0)
            fold.kill(rng)
        if proxy and outage_at is not None and progress >= outage_at and cut_since is None:
            proxy.cut()
            cut_since, outage_at = time.monotonic(), None
        if cut_since is not None and time.monotonic() - cut_since >= outage_seconds:
            proxy.restore()
            done["outage_seconds"], cut_since = round(time.monotonic() - cut_since, 1), None
        fold.tick(rng)
        time.sleep(0.02)
    if cut_since is not None:  # the load ended first
        proxy.restore()
        done["outage_seconds"] = round(time.monotonic() - cut_since, 1)
    deadline = time.monotonic() + 150
    while fold.busy() and time.monotonic() < deadline:  # let the last fold kill land
        fold.tick(rng)
        time.sleep(0.02)
    done["web_kills_missed"] = len(web_at)
    return done


def verdict(answers, counted: dict[int, int]) -> dict:
    """Compare what each request was answered with how often the fold counted it."""
    tally = Counter()
    for n, answer in enumerate(answers, start=1):
        got = counted.get(n, 0)
        tally[answer] += 1
        if answer == webload.TRUE and got == 0:
            tally["lost"] += 1
        if got >= 2:
            tally["double"] += 1
        if answer != webload.TRUE and answer != webload.NOT_SENT and got == 1:
            tally["unanswered_but_counted"] += 1
        if answer == webload.NOT_SENT and got:
            tally["never_requested_but_counted"] += 1
    strangers = [pk for pk in counted if not 1 <= pk <= len(answers)]
    return {
        "sent": len(answers) - tally[webload.NOT_SENT],
        "true": tally[webload.TRUE],
        "false": tally[webload.FALSE],
        "no_answer": tally[webload.NO_ANSWER] + tally[webload.HTTP_ERROR] + tally[webload.OK],
        "counted": sum(counted.values()),
        "lost": tally["lost"],
        "double": tally["double"],
        "phantom": tally["never_requested_but_counted"] + len(strangers),
        "unanswered_but_counted": tally["unanswered_but_counted"],
    }


def counted_downloads() -> dict[int, int]:
    """Return {article pk: downloads counted} from the fold's rows."""
    from tests.testapp.models import ArticleTotals

    return dict(ArticleTotals.objects.values_list("object_id", "downloads"))


def run(events: int, web_kills: int, fold_kills: int, outage: float, seed: int, log, *, concurrency: int = 8,
        rate: float = 0.0, workers: int = 2, preload: bool = False, fold_after_commit: bool | None = None) -> dict:
    """Run the whole harness against the configured test database and broker; return the summary."""
    from django.conf import settings

    from tests.proxy import BrokerProxy

    broker, rng, started = settings.TEST_BROKER, random.Random(seed), time.monotonic()
    if fold_after_commit is None:
        fold_after_commit = broker == "filesystem"  # a fold killed mid-batch loses it there (docs/guarantees.rst)
    proxy = BrokerProxy(settings.TRACKABLE_BROKER_URL) if broker in URL_ENV else None
    env = child_env(broker, proxy.url if proxy else None)
    fold = FoldWorker(env, log, fold_after_commit)
    server = webload.Gunicorn("tests.chaos.wsgi:application", env, log, workers=workers, preload=preload)
    try:
        server.wait_ready()
        plan = {"events": events, "web_kills": schedule(web_kills, rng), "fold_kills": schedule(fold_kills, rng),
                "outage_at": 0.3 if outage else None, "outage": outage}
        load = webload.start_load(server.port, "/track/{n}/", count=events, seconds=max(600.0, events / 50),
                                  concurrency=concurrency, rate=rate, record=True)
        done = drive(load, server, fold, proxy, plan, rng)
        load.join(60)
        load_seconds = round(load.elapsed.value, 1)
    finally:
        server.stop()
        fold.stop()
        if proxy:
            proxy.close()
    # A fold killed holding a batch gives it back at once (AMQP, filesystem://) or after its lease (Redis).
    from trackable.redisqueue import LEASE

    wait = 3.0 + (LEASE if broker == "redis" else 0.0)
    final = final_fold(wait)
    report = {"database": settings.TEST_DB, "broker": broker, "events": events, **verdict(load.answers, counted_downloads())}
    report.update(done, fold_kills=dict(fold.kills), fold_crashes=fold.crashes, outage_skipped=proxy is None and bool(outage),
                  load_seconds=load_seconds, req_per_s=round(report["sent"] / max(load_seconds, 1e-9)),
                  final_fold=final, seconds=round(time.monotonic() - started, 1))
    return report


def summary_line(report: dict) -> str:
    """Return the one-line summary: sent/true/counted/lost/double/kills."""
    kills = sum(report["fold_kills"].values())
    return (f"{report['database']}+{report['broker']}: sent={report['sent']} true={report['true']} "
            f"false={report['false']} no_answer={report['no_answer']} counted={report['counted']} "
            f"lost={report['lost']} double={report['double']} phantom={report['phantom']} "
            f"web_kills={report['web_kills']} fold_kills={kills} outage={report['outage_seconds']}s "
            f"({report['req_per_s']} req/s, {report['seconds']}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="requests, one event each")
    parser.add_argument("--web-kills", type=int, default=20, help="SIGKILLs of random gunicorn workers")
    parser.add_argument("--fold-kills", type=int, default=5, help="SIGKILLs of the folding worker")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the broker is cut, from 30%% of the load")
    parser.add_argument("--concurrency", type=int, default=8, help="connections of the load generator")
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s at most (0: as fast as answered)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--preload", action="store_true", help="gunicorn --preload (workers forked from a loaded app)")
    parser.add_argument("--fold-kills-random", action="store_true",
                        help="kill the fold at random moments on filesystem:// too (loses the batch it took)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        with open(ROOT / "tests" / "chaos" / "last-web-run.log", "w") as log:
            report = run(args.events, args.web_kills, args.fold_kills, args.outage, args.seed, log,
                         concurrency=args.concurrency, rate=args.rate, workers=args.workers, preload=args.preload,
                         fold_after_commit=False if args.fold_kills_random else None)
        print(json.dumps(report))
        print(summary_line(report))
    finally:
        teardown_databases(old, verbosity=0)
        from tests.helpers import delete_run_queues

        delete_run_queues()  # the run's queues on RabbitMQ (Redis keeps none once empty)
    sys.exit(0 if report["lost"] == report["double"] == report["phantom"] == 0 else 1)


if __name__ == "__main__":
    main()
