"""Memory: the peak RSS of a folding worker whose queue holds big junk messages, against small ones.

    python bench/bench_memory.py --broker amqp
    python bench/bench_memory.py --broker redis --junk 120 --junk-mib 5
    python bench/bench_memory.py --broker filesystem

Each round fills the queue with `--valid` one-event messages (the baseline) or with the same messages
plus `--junk` bodies of `--junk-mib` MiB each (not JSON: the fold must set them aside), then runs one
folding worker process (bench/fold_worker.py) and reads its VmHWM. Rounds alternate; medians are
printed, with the ratio to the baseline. The target: a worker stays under 256 MB whatever the queue holds.
"""
from __future__ import annotations

import atexit
import statistics
import sys

from bench_fold import reset_tables
from bench_scale import run_workers
from common import emit, parser, purge_queues, setup
from fill import fill, unbuffered_bodies

TARGET_MB = 256


def junk_bodies(count: int, mib: int, valid: int):
    """Yield `valid` small messages with `count` junk bodies of `mib` MiB spread among them."""
    every = max(1, valid // max(count, 1))
    junk = b"j" * (mib * 1024 * 1024)
    for i, body in enumerate(unbuffered_bodies(valid)):
        if i % every == 0 and count:
            count -= 1
            yield junk
        yield body
    for _ in range(count):
        yield junk


def one_round(broker: str, junk: int, mib: int, valid: int) -> float:
    """Fill, fold in a worker process, check its counts; return its peak RSS in MB."""
    reset_tables()
    purge_queues()
    _purge_dead()
    fill(junk_bodies(junk, mib, valid) if junk else unbuffered_bodies(valid))
    (report,) = run_workers(broker, 1, 1000)
    print(f"  {broker}: {junk} junk + {valid} valid: folded {report['messages']} valid messages, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB", flush=True)
    _purge_dead()
    return report["peak_rss_mb"]


def _purge_dead(delete: bool = False) -> None:
    from trackable import transport

    conn = transport.connection()
    try:
        dead = transport.dead_letter_queue()(conn.channel())
        dead.declare()
        dead.delete() if delete else dead.purge()
    finally:
        conn.release()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(runs=3)
    p.add_argument("--junk", type=int, default=120)
    p.add_argument("--junk-mib", type=int, default=5)
    p.add_argument("--valid", type=int, default=2000)
    args = p.parse_args()
    setup(args.broker)
    atexit.register(_purge_dead, delete=True)
    peaks: dict[str, list[float]] = {"baseline": [], "junk": []}
    for _ in range(args.runs):
        peaks["baseline"].append(one_round(args.broker, 0, args.junk_mib, args.valid))
        peaks["junk"].append(one_round(args.broker, args.junk, args.junk_mib, args.valid))
    emit(
        f"peak RSS of a folding worker, {args.junk} junk messages of {args.junk_mib} MiB among {args.valid}",
        statistics.median(peaks["junk"]), "MB", f"{args.valid} small messages", statistics.median(peaks["baseline"]),
        broker=args.broker, target_mb=TARGET_MB, rounds=peaks,
    )
    if statistics.median(peaks["junk"]) > TARGET_MB:
        sys.exit(f"Over the target of {TARGET_MB} MB.")


if __name__ == "__main__":
    main()
