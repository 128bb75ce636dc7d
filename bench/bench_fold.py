"""P2, the fold: events/s folded into PostgreSQL by one worker against kombu's raw drain of the same broker.

    python bench/bench_fold.py --broker amqp
    python bench/bench_fold.py --broker redis
    python bench/bench_fold.py --broker amqp --sweep 10,100,1000,2000   # fold rate per batch size

Unbuffered: one event per message (send_increment_message's default), keys spread over 1k objects ×
2 fields × 5 day buckets. Buffered: the same spread sent through the producer buffer (1000 events a
flush), so one message carries up to 1000 aggregated events.
"""
from __future__ import annotations

import statistics
import time

from common import emit, parser, purge_queues, setup
from fill import buffered_bodies, fill, raw_drain, unbuffered_bodies


def reset_tables() -> None:
    """Empty the data model and the ledger so every run starts alike."""
    from tests.testapp.models import ArticleTrackableData
    from trackable.models import FoldedMessage

    ArticleTrackableData.objects.all().delete()
    FoldedMessage.objects.all().delete()


def fold_rate(messages: int, batch_size: int, sends: int | None = None) -> float:
    """Fold `messages` queued messages; return sends folded per second (one per event when unbuffered)."""
    from tests.testapp.models import ArticleTrackableData
    from trackable.folding import process_messages

    started = time.perf_counter()
    result = process_messages([ArticleTrackableData], batch_size=batch_size, max_messages=messages, idle_timeout=2.0)
    elapsed = time.perf_counter() - started
    if result.messages != messages:
        raise RuntimeError(f"Folded {result.messages} of {messages} messages: {result}")
    return (sends or result.events) / elapsed


def run_once(args) -> tuple[float, float, float]:
    """Return (raw drain msgs/s, unbuffered fold events/s, buffered fold sends/s) of one run."""
    reset_tables()
    fill(unbuffered_bodies(args.messages))
    raw = raw_drain(args.messages, args.batch_size)
    fill(unbuffered_bodies(args.messages))
    unbuffered = fold_rate(args.messages, args.batch_size)
    bodies = buffered_bodies(args.events)
    fill(bodies)
    buffered = fold_rate(len(bodies), args.batch_size, sends=args.events)
    purge_queues()
    return raw, unbuffered, buffered


def sweep(args) -> None:
    """Print the unbuffered fold rate and the raw drain rate for each batch size of --sweep."""
    for size in [int(s) for s in args.sweep.split(",")]:
        raws, folds = [], []
        for _ in range(args.runs):
            reset_tables()
            fill(unbuffered_bodies(args.messages))
            raws.append(raw_drain(args.messages, size))
            fill(unbuffered_bodies(args.messages))
            folds.append(fold_rate(args.messages, size))
        emit("P2 fold per batch size", statistics.median(folds), "events/s", "raw kombu drain, same batch size",
             statistics.median(raws), batch_size=size, broker=args.broker, runs=args.runs, messages=args.messages)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=10_000, help="one-event messages per unbuffered run")
    p.add_argument("--events", type=int, default=100_000, help="sends per buffered run")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--sweep", help="comma-separated batch sizes: print the fold rate of each instead")
    args = p.parse_args()
    setup(args.broker)
    if args.sweep:
        return sweep(args)
    runs = [run_once(args) for _ in range(args.runs)]
    raw, unbuffered, buffered = (statistics.median(r[i] for r in runs) for i in range(3))
    common = {"broker": args.broker, "runs": args.runs, "batch_size": args.batch_size}
    emit("P2 raw kombu drain (no database)", raw, "messages/s", "raw kombu drain", raw, **common)
    emit("P2 fold, one event per message", unbuffered, "events/s", "raw kombu drain (messages/s)", raw,
         messages=args.messages, **common)
    emit("P2 fold, buffered producer", buffered, "events/s", "fold, one event per message", unbuffered,
         events=args.events, **common)


if __name__ == "__main__":
    main()
