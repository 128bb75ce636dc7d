"""A folding worker's memory stays bounded whatever the queue holds (CI-sized; bench/bench_memory.py is the big one)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import drain_dead_letters, publish_raw
from tests.testapp.models import Article, ArticleTrackableData
from trackable import messages

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
LABEL = "testapp.articletrackabledata"
TS = 1_796_000_000_000
JUNK = 10
VALID = 50
LOOSE_BOUND_MB = 200  # the baseline of a fold is ~60 MB; ten junk messages held at once would add 70+ MB


@pytest.mark.timeout(300)
def test_big_junk_messages_are_set_aside_and_memory_stays_bounded():
    article = Article.objects.create(title="a")
    junk = b"j" * (5 * 1024 * 1024)
    for i in range(VALID):
        if i % 5 == 0 and i // 5 < JUNK:
            publish_raw(junk, LABEL)
        publish_raw(messages.build([(LABEL, "testapp.article", article.pk, "impressions", 1, TS)]), LABEL)
    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos.memory_fold"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert (report["messages"], report["malformed"]) == (VALID, JUNK), report
    assert ArticleTrackableData.objects.get().impressions == VALID
    assert report["peak_rss_mb"] < LOOSE_BOUND_MB, report
    # Under the envelope limit (8 × TRACKABLE_MAX_MESSAGE_BYTES + 64 KiB) they are read, one per
    # batch at most (the 4 MiB byte budget), and dead-lettered for their body's size.
    assert report["reasons"] == {"body is": JUNK}
    assert [h["x-trackable-error"] for _, h in drain_dead_letters()] == [
        f"body is {len(junk)} bytes, over the limit of 1048576"
    ] * JUNK
