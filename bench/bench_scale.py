"""P3 and memory: 1 vs 2 folding worker processes, and the peak memory of a worker folding 1M events.

    python bench/bench_scale.py --broker amqp
    python bench/bench_scale.py --broker redis --memory-events 1000000

Workers are separate processes (bench/fold_worker.py) sharing the queue and the database; a rate is
the events all workers folded over the wall time from the first drain to the last commit.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_fold import reset_tables
from common import emit, parser, setup
from fill import buffered_bodies, fill, unbuffered_bodies

HERE = Path(__file__).resolve().parent


def run_workers(broker: str, count: int, batch_size: int) -> list[dict]:
    """Start `count` folding workers on the filled queue; return their reports once all have finished."""
    env = {**os.environ, "TRACKABLE_BENCH_CHILD": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(HERE / "fold_worker.py"), broker, str(batch_size)],
                         env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode:
            raise RuntimeError(f"A folding worker failed with exit code {proc.returncode}.")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def rate(reports: list[dict]) -> float:
    """Return the events/s of workers that ran side by side."""
    started = min(r["start"] for r in reports if r["end"])
    ended = max(r["end"] for r in reports if r["end"])
    return sum(r["events"] for r in reports) / (ended - started)


def scale(args) -> None:
    """Print the fold rate of two workers against one, on the same backlog of one-event messages."""
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.runs):
        for workers in (1, 2):
            reset_tables()
            fill(unbuffered_bodies(args.messages))
            reports = run_workers(args.broker, workers, args.batch_size)
            if sum(r["messages"] for r in reports) != args.messages:
                raise RuntimeError(f"The workers folded {reports}, not {args.messages} messages.")
            rates[workers].append(rate(reports))
    emit("P3 fold with 2 worker processes", statistics.median(rates[2]), "events/s", "1 worker process",
         statistics.median(rates[1]), broker=args.broker, runs=args.runs, messages=args.messages,
         batch_size=args.batch_size)


def memory(args) -> None:
    """Print the peak RSS of one worker folding --memory-events buffered events against a tenth of them."""
    peaks: dict[int, float] = {}
    for events in (args.memory_events // 10, args.memory_events):
        reset_tables()
        fill(buffered_bodies(events))
        (report,) = run_workers(args.broker, 1, args.batch_size)
        peaks[events] = report["peak_rss_mb"]
    small, big = args.memory_events // 10, args.memory_events
    emit(f"Memory: peak RSS of a worker folding {big} events", peaks[big], "MB",
         f"peak RSS of a worker folding {small} events", peaks[small], broker=args.broker, batch_size=args.batch_size)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000, help="one-event messages per scaling run")
    p.add_argument("--memory-events", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--only", choices=["scale", "memory"])
    args = p.parse_args()
    setup(args.broker)
    if args.only != "memory":
        scale(args)
    if args.only != "scale":
        memory(args)


if __name__ == "__main__":
    main()
