"""A folding worker for the kill harness: folds in a loop; may SIGKILL itself between commit and ack.

TRACKABLE_CHAOS_KILL_AFTER_COMMIT is the probability (0..1) of dying right after a batch committed,
before it is acked: the worst moment for exactly-once.
"""
import os
import random
import signal

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from trackable import folding  # noqa: E402

PROBABILITY = float(os.environ.get("TRACKABLE_CHAOS_KILL_AFTER_COMMIT", "0"))
BATCH = int(os.environ.get("TRACKABLE_CHAOS_BATCH", "200"))
_real_ack = folding._ack


def _maybe_die_then_ack(raws, channel):
    if raws and random.random() < PROBABILITY:
        os.kill(os.getpid(), signal.SIGKILL)
    _real_ack(raws, channel)


folding._ack = _maybe_die_then_ack

if __name__ == "__main__":
    while True:
        folding.process_messages(batch_size=BATCH, idle_timeout=0.5)
