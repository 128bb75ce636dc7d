"""One folding worker process of bench_scale.py: fold until the queue stays empty, print a JSON line.

Not run by hand: bench_scale.py starts it with the parent's run id, so it finds the same database and
queues. It reports when its first drain started and its last batch ended (wall clock), its counts and
its peak resident memory.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

from common import setup


def main() -> None:
    broker, batch_size = sys.argv[1], int(sys.argv[2])
    os.environ["TRACKABLE_BENCH_CHILD"] = "1"
    setup(broker)
    from tests.testapp.models import ArticleTrackableData
    from trackable import folding

    marks: dict[str, float] = {}
    real_drain, real_fold = folding._drain, folding.fold_batch

    def drain(*args, **kwargs):
        marks.setdefault("start", time.time())
        return real_drain(*args, **kwargs)

    def fold_batch(*args, **kwargs):
        try:
            return real_fold(*args, **kwargs)
        finally:
            marks["end"] = time.time()

    folding._drain, folding.fold_batch = drain, fold_batch
    result = folding.process_messages([ArticleTrackableData], batch_size=batch_size, idle_timeout=3.0)
    print(json.dumps({
        "events": result.events, "messages": result.messages, "duplicates": result.duplicates,
        "start": marks.get("start"), "end": marks.get("end"),
        "peak_rss_mb": peak_rss_mb(),
    }), flush=True)


def peak_rss_mb() -> float:
    """Return this process's peak resident memory in MB.

    VmHWM, not getrusage(): Linux carries ru_maxrss over exec, so it would report the parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
