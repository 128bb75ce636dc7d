"""Several producer processes and two folding workers at once on the same rows: exact, no deadlock."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.testapp.models import Article, ArticleTrackableData

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db(transaction=True)
def test_two_workers_and_three_producers_count_exactly(tmp_path):
    pks = [Article.objects.create(title=f"hot {i}").pk for i in range(3)]
    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", PYTHONPATH=str(ROOT), TRACKABLE_CHAOS_BATCH="50")
    logs = [open(tmp_path / f"p{i}.log", "w+") for i in range(5)]  # noqa: SIM115 - read after the processes end
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.worker"], cwd=ROOT, env=env, stdout=logs[i], stderr=subprocess.STDOUT
        )
        for i in range(2)
    ]
    producers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.producer", ",".join(map(str, pks)), "600"],
            cwd=ROOT, env=env, stdout=logs[2 + i], stderr=subprocess.STDOUT,
        )
        for i in range(3)
    ]  # fmt: skip
    try:
        assert [p.wait(timeout=240) for p in producers] == [0, 0, 0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            total = sum(i + c for i, c in ArticleTrackableData.objects.values_list("impressions", "click_throughs"))
            if total >= 1800:
                break
            assert all(w.poll() is None for w in workers), "a folding worker died"
            time.sleep(0.5)
        time.sleep(1)  # anything counted twice would show up now
    finally:
        for w in workers:
            w.terminate()
            w.wait(timeout=30)
    output = ""
    for log in logs:
        log.seek(0)
        output += log.read()
        log.close()
    rows = sorted(ArticleTrackableData.objects.values_list("object_id", "impressions", "click_throughs"))
    # 3 producers × 600 events, round-robin over 3 articles: each article gets 3 × 200 events, and every
    # third round of each producer is a click-through (67 of 200).
    assert rows == [(pk, 3 * 133, 3 * 67) for pk in pks], output[-3000:]
    assert "deadlock" not in output.lower() and "Traceback" not in output, output[-3000:]
