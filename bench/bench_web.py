"""W1, the site: requests/s of one Item page served by gunicorn, counted in different ways.

    pip install -e .[bench]                      # gunicorn and django-hitcount come with it
    python bench/bench_web.py                    # RabbitMQ, Redis and filesystem://, 10 rounds each
    python bench/bench_web.py --broker amqp --rounds 20 --seconds 5
    python bench/bench_web.py --mode 'fsync={"TRACKABLE_JOURNAL_FSYNC": true}'
    python bench/bench_web.py --only defaults    # the untracked view and the journal's defaults only

A real site: gunicorn with 2 sync workers (bench.webapp, PostgreSQL, sessions and auth middleware)
and a load generator in its own process on 127.0.0.1 (tests/webload.py: a new connection per
request, as sync workers close them anyway; every request a new visitor without cookies, with one of
eight browsers and a referrer drawn like a site's — direct, internal, search engines, other sites, a few
unique links: webload.visitor_headers). Each
variant is a view over the same page; settings that make a mode are applied per server start
(TRACKABLE_BENCH_WEB_SETTINGS): one gunicorn per distinct settings, all started up front on their own
ports and idle while another is measured. Rounds are short and interleaved (the variants in a
rotated order); each variant's requests/s is divided by the untracked view's of the same round, and
the medians are printed and written to bench/out/. The fold does not run meanwhile: the queues are
emptied after each round. Beside requests/s, each variant's CPU per request (its gunicorn workers, relay
threads included, and the broker's server) is compared with the untracked view's: a ratio that other
programs on a busy machine hardly move, where requests/s needs a quiet one; and the part of it the
relay threads used (the workers' threads other than the main one), per request.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BROKERS = ("amqp", "redis", "filesystem")
ITEMS = 50
FAILED: dict[str, int] = {}  # label → requests not answered 200 over all rounds
RELAY_US: dict[str, list[float]] = {}  # label → the relay threads' CPU µs per request, per round


@dataclass(frozen=True)
class Variant:
    """One line of the table: a view of the page, the settings of its server, the brokers it applies to."""

    label: str
    path: str
    settings: dict = field(default_factory=dict)
    brokers: tuple[str, ...] = BROKERS


BASELINE = "untracked"
# Add a mode by adding a line (or with --mode on the command line).
VARIANTS = [
    Variant(BASELINE, "/plain/{n}/"),
    Variant('Item.objects.filter(pk=pk).update(views=F("views") + 1)', "/update/{n}/"),
    Variant("django-hitcount, HitCountDetailView with count_hit = True", "/hitcount/{n}/"),
    Variant("send_increment_message, defaults (the journal)", "/tracked/{n}/"),
    Variant("same, counted in the totals and three breakdowns (referrer, search terms, browser and device)",
            "/breakdowns/{n}/"),
    Variant("same, TRACKABLE_JOURNAL = False (direct publish)", "/tracked/{n}/", {"TRACKABLE_JOURNAL": False}),
    Variant(
        "same, TRACKABLE_JOURNAL = False, TRACKABLE_PUBLISH_CONFIRMS = False", "/tracked/{n}/",
        {"TRACKABLE_JOURNAL": False, "TRACKABLE_PUBLISH_CONFIRMS": False}, ("amqp",),
    ),
]


def parse_mode(text: str) -> Variant:
    """Return the variant of a --mode 'label={"TRACKABLE_X": value}' (the tracked view, every broker)."""
    label, sep, settings = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--mode {text!r}: write it as 'label={{\"TRACKABLE_X\": value}}'.")
    try:
        overrides = json.loads(settings)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--mode {text!r}: the settings are not JSON ({err}).") from err
    return Variant(label.strip(), "/tracked/{n}/", overrides)


def groups(variants: list[Variant], broker: str) -> dict[str, list[Variant]]:
    """Return the variants of `broker` grouped by server settings (one server start per group and round)."""
    out: dict[str, list[Variant]] = {}
    for v in variants:
        if broker in v.brokers:
            out.setdefault(json.dumps(v.settings, sort_keys=True), []).append(v)
    return out


def cpu_seconds(pids: list[int], task_of: int | None = None) -> float:
    """Return the CPU seconds (user + system, all threads) the live processes `pids` have used so far.

    With `task_of`, `pids` are thread ids of that process, and the figure is theirs.
    """
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat" if task_of is None else f"/proc/{task_of}/task/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def relay_cpu_seconds(pids: list[int]) -> float:
    """Return the CPU seconds the threads of the processes `pids` other than their main threads used (the relay).

    A sync gunicorn worker serves requests in its main thread; its other thread is the journal's relay.
    """
    total = 0.0
    for pid in pids:
        try:
            tids = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        total += cpu_seconds([tid for tid in tids if tid != pid], task_of=pid)
    return total


def broker_pids(broker: str) -> list[int]:
    """Return the pids of the broker's server on this machine (RabbitMQ's Erlang VM, redis-server)."""
    name = {"amqp": "beam.smp", "redis": "redis-server"}.get(broker)
    if name is None:
        return []
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def measure(server, path: str, broker: str, args) -> tuple[float, float, float, int]:
    """Warm up; return (requests/s answered 200, CPU ms per request, relay µs per request, failed requests).

    The CPU is what the server's workers (the relay threads included) and the broker's server used
    while the load ran: unlike requests/s it hardly moves when other programs share the machine.
    """
    from tests import webload

    port = server.port
    webload.start_load(port, path, count=10**9, seconds=args.warmup, concurrency=args.concurrency, items=ITEMS,
                       visitors=True).join(60)
    workers = server.worker_pids()
    pids = workers + broker_pids(broker)
    before, relay_before = cpu_seconds(pids), relay_cpu_seconds(workers)
    load = webload.start_load(port, path, count=10**9, seconds=args.seconds, concurrency=args.concurrency, items=ITEMS,
                              visitors=True)
    load.join(args.seconds + 60)
    time.sleep(2 * 0.5)  # the relays' next ticks publish what this load journaled (their CPU belongs to it)
    cpu, relay = cpu_seconds(pids) - before, relay_cpu_seconds(workers) - relay_before
    ok = max(1, load.ok.value)
    return load.ok.value / load.elapsed.value, 1000 * cpu / ok, 1e6 * relay / ok, load.progress.value - load.ok.value


def start_servers(broker: str, variants: list[Variant], args, log) -> dict[str, object]:
    """Start one gunicorn per distinct settings (all at once, on their own ports); return them by label."""
    from tests import webload

    servers, by_label = [], {}
    try:
        for settings_json, members in groups(variants, broker).items():
            env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.web_settings", TRACKABLE_BENCH_WEB_SETTINGS=settings_json,
                       TRACKABLE_BENCH_CHILD="1", PYTHONPATH=str(ROOT))
            server = webload.Gunicorn("bench.webapp.wsgi:application", env, log, workers=args.workers)
            servers.append(server)
            server.wait_ready()
            by_label.update((v.label, server) for v in members)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return by_label


def one_round(variants: list[Variant], servers: dict, rotation: int, broker: str, args) -> tuple[dict, dict]:
    """Measure every variant once, in a rotated order; return req/s and CPU ms per request, per label."""
    from common import purge_queues

    rates: dict[str, float] = {}
    cpu: dict[str, float] = {}
    order = variants[rotation % len(variants):] + variants[:rotation % len(variants)]
    for v in order:
        rates[v.label], cpu[v.label], relay_us, failed = measure(servers[v.label], v.path, broker, args)
        RELAY_US.setdefault(v.label, []).append(relay_us)
        FAILED[v.label] = FAILED.get(v.label, 0) + failed  # not 200 (or no answer): reported, not counted
    purge_queues()
    return rates, cpu


def run_broker(broker: str, variants: list[Variant], args) -> dict:
    """Measure `broker` in this process (Django is set up for it); return the medians and ratios."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.web_settings"
    from common import setup

    setup(broker)
    from bench.webapp.models import Item

    Item.objects.bulk_create(Item(title=f"Item {i}", body="Lorem ipsum dolor sit amet. " * 40) for i in range(ITEMS))
    OUT.mkdir(exist_ok=True)
    variants = [v for v in variants if broker in v.brokers]
    rounds, cpu_rounds = [], []
    with open(OUT / f"web-{broker}-gunicorn.log", "w") as log:
        servers = start_servers(broker, variants, args, log)
        try:
            for r in range(args.rounds):
                rates, cpu = one_round(variants, servers, r, broker, args)
                rounds.append(rates)
                cpu_rounds.append(cpu)
                print(json.dumps({"broker": broker, "round": r + 1, "req_per_s": {k: round(v) for k, v in rates.items()},
                                  "cpu_ms_per_request": {k: round(v, 3) for k, v in cpu.items()}}), flush=True)
        finally:
            for server in set(servers.values()):
                server.stop()
    return summarize(broker, rounds, cpu_rounds, args)


def summarize(broker: str, rounds: list[dict[str, float]], cpu_rounds: list[dict[str, float]], args) -> dict:
    """Return the median req/s and the median of each round's ratio to the untracked view, and the same of CPU.

    `cpu_ratio` is the untracked view's CPU per request divided by the variant's (workers + broker server):
    the throughput a dedicated machine would keep if that CPU were all a request cost.
    """
    labels = list(rounds[0])
    table = {}
    for label in labels:
        table[label] = {
            "req_per_s": round(statistics.median(r[label] for r in rounds)),
            "ratio": round(statistics.median(r[label] / r[BASELINE] for r in rounds), 2),
            "ratios": [round(r[label] / r[BASELINE], 2) for r in rounds],
            "cpu_ms_per_request": round(statistics.median(c[label] for c in cpu_rounds), 3),
            "cpu_ratio": round(statistics.median(c[BASELINE] / c[label] for c in cpu_rounds), 2),
            "relay_us_per_request": round(statistics.median(RELAY_US.pop(label, [0.0])), 1),
            "failed_requests": FAILED.get(label, 0),
        }
    return {"broker": broker, "rounds": len(rounds), "seconds": args.seconds, "workers": args.workers,
            "concurrency": args.concurrency, "table": table, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def print_table(result: dict) -> None:
    print(f"\n{result['broker']}: medians of {result['rounds']} interleaved rounds, {result['seconds']}s each")
    for label, row in result["table"].items():
        failed = f", {row['failed_requests']} failed requests" if row["failed_requests"] else ""
        print(f"  {row['ratio']:5.2f}  {row['req_per_s']:6d} req/s  CPU {row['cpu_ratio']:4.2f} "
              f"({row['cpu_ms_per_request']:.3f} ms/request, relay thread {row['relay_us_per_request']:.1f} µs)  "
              f"{label}   (rounds: {row['ratios']}{failed})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", default=",".join(BROKERS), help="comma-separated: amqp, redis, filesystem")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds (at least 3); medians are reported")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per variant and round")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each measurement")
    p.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    p.add_argument("--concurrency", type=int, default=4, help="connections of the load generator")
    p.add_argument("--mode", type=parse_mode, action="append", default=[],
                   help='another tracked variant: \'label={"TRACKABLE_X": value}\' (repeatable)')
    p.add_argument("--only", action="append", default=[],
                   help="measure only the variants whose label contains this text, and the untracked view (repeatable)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    variants = [v for v in VARIANTS + args.mode
                if not args.only or v.label == BASELINE or any(text in v.label for text in args.only)]
    if args.child:
        print("RESULT " + json.dumps(run_broker(args.child, variants, args)), flush=True)
        return
    brokers = [b.strip() for b in args.broker.split(",") if b.strip()]
    unknown = set(brokers) - set(BROKERS)
    if unknown or args.rounds < 3:
        p.error(f"choose brokers among {', '.join(BROKERS)} and at least 3 rounds.")
    for broker in brokers:  # one process per broker: Django's settings name one broker
        cmd = [sys.executable, __file__, "--child", broker] + sys.argv[1:]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            lines = list(_stream(proc.stdout))
        if proc.returncode:
            sys.exit(f"bench_web.py failed on {broker} (exit {proc.returncode}); see bench/out/web-{broker}-gunicorn.log.")
        for line in lines:
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
                print_table(result)
                (OUT / f"web-{broker}.json").write_text(json.dumps(result, indent=2) + "\n")


def _stream(lines):
    """Echo the child's lines as they come (the rounds), and yield them."""
    for line in lines:
        if not line.startswith("RESULT "):
            print(line, end="", flush=True)
        yield line


if __name__ == "__main__":
    main()
