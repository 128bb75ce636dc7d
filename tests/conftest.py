"""Shared fixtures: real brokers and databases, clean queues per test."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from trackable import outage, relay, replay, transport
from trackable.sites import site


def _purge_all() -> None:
    conn = transport.connection()
    try:
        conn.ensure_connection(max_retries=2)
        channel = conn.channel()
        for dm in site.data_models():
            queue = transport.queue_for(dm._meta.label_lower)(channel)
            queue.declare()
            queue.purge()
        dead = transport.dead_letter_queue()(channel)
        dead.declare()
        dead.purge()
        if django_settings.TEST_BROKER == "redis":
            # What an earlier test's fold took and never acked would come back after its lease, into this
            # test's queues: forget it with the queues.
            from trackable import redisqueue

            _, unacked, index = redisqueue._keys(channel)
            with channel.conn_or_acquire() as client:
                client.delete(unacked, index)
        channel.close()
    finally:
        conn.release()


@pytest.fixture(autouse=True)
def clean_queues(request):
    """Start every test that touches the broker with empty queues (fails loudly if it is unreachable)."""
    if "no_broker" in request.keywords:
        replay.guard.reset()
        yield
        return
    relay.flush()  # what an earlier test journaled reaches the queues now, and is purged with them
    _purge_all()
    outage.reset()
    replay.guard.reset()
    yield
    transport.reset()
    outage.reset()


@pytest.fixture
def direct_publish(settings):
    """Publish from the call, one message per send (TRACKABLE_JOURNAL = False): for tests of the fold itself."""
    settings.TRACKABLE_JOURNAL = False


def pytest_collection_modifyitems(config, items):
    """Deselect the tests of another broker's environments (e.g. RabbitMQ quorum queues under Redis)."""
    broker = django_settings.TEST_BROKER
    keep, other = [], []
    for item in items:
        marker = item.get_closest_marker("only_broker")
        (other if marker and broker not in marker.args else keep).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = keep


def pytest_sessionfinish(session, exitstatus):
    """Leave nothing behind: this run's queue and journal folders, its RabbitMQ queues, its Redis keys."""
    relay.reset()
    for name in ("TRACKABLE_QUEUE_DIR", "TRACKABLE_JOURNAL_DIR"):
        folder = getattr(django_settings, name, None)
        if folder and Path(folder).name.startswith((".queue-", ".journal-")):
            shutil.rmtree(folder, ignore_errors=True)
    from tests.helpers import delete_run_queues

    delete_run_queues()
