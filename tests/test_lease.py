"""A killed fold's messages are folded again within 30 s on the default settings, and nothing stays behind."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import fold
from tests.testapp.models import Article, ArticleTrackableData
from trackable import messages, transport
from trackable.conf import settings as trackable_settings

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
LABEL = "testapp.articletrackabledata"
TS = 1_796_000_000_000


def kill_a_fold_holding_the_queue() -> None:
    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos.killed_fold"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (-9, "taken 40\n"), done.stdout + done.stderr


def left_behind() -> list:
    """Return what a dead fold could leave: taken-message records (Redis), claimed files (filesystem://)."""
    if settings.TEST_BROKER == "redis":
        conn = transport.connection()
        try:
            client = conn.default_channel.client
            return [key for key in ("unacked", "unacked_index") if client.exists(f"{trackable_settings.QUEUE_PREFIX}.{key}")]
        finally:
            conn.release()
    if settings.TEST_BROKER == "filesystem":
        return [n for n in os.listdir(trackable_settings.queue_dir) if n.endswith(".claimed")]
    return []


@pytest.mark.timeout(180)
def test_a_killed_folds_messages_come_back_within_30_seconds_on_the_defaults():
    assert trackable_settings.BROKER_TRANSPORT_OPTIONS == {}  # kombu's defaults: visibility_timeout 1 h
    article = Article.objects.create(title="a")
    for _ in range(40):
        transport.publish(messages.build([(LABEL, "testapp.article", article.pk, "impressions", 1, TS)]), LABEL)
    kill_a_fold_holding_the_queue()
    killed_at = time.monotonic()

    counted = 0
    while counted < 40 and time.monotonic() - killed_at < 60:
        counted += fold(idle_timeout=0.2).messages  # what fold_trackable_messages --loop does
        time.sleep(0.5)
    elapsed = time.monotonic() - killed_at

    print(f"{settings.TEST_BROKER}: a killed fold's messages were folded again after {elapsed:.1f}s")
    assert counted == 40 and ArticleTrackableData.objects.get().impressions == 40
    assert elapsed < 30
    assert left_behind() == []
    assert (fold().messages, fold().duplicates) == (0, 0)
