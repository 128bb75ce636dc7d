"""Unique visitors under load: two folding workers (one killed now and then), privacy of the stored data, accuracy."""
from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Sum
from django.test import override_settings
from django.test.client import RequestFactory

from tests.helpers import fold, publish_raw
from tests.testapp.models import Page, PageData
from trackable import messages, messaging, redisqueue, relay, sketches, transport, uniques, visitors

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TS = int(NOON.timestamp() * 1000)


@pytest.fixture
def salts(monkeypatch):
    monkeypatch.setattr(visitors, "clock", lambda: NOON.timestamp())
    visitors.reset()
    visitors.load_salts()
    yield
    visitors.reset()


def publish_visits(pages: list[Page], messages_count: int, pool: int, seed: int) -> tuple[dict[int, set[str]], dict[int, int]]:
    """Publish messages of 10 visits each (a page and a visitor hash drawn at random); return who visited what, and views."""
    rng = random.Random(seed)
    seen: dict[int, set[str]] = {p.pk: set() for p in pages}
    views = dict.fromkeys(seen, 0)
    for _ in range(messages_count):
        events = []
        for _ in range(10):
            page, visitor = rng.choice(pages), f"{rng.randrange(pool):016x}"
            seen[page.pk].add(visitor)
            views[page.pk] += 1
            events.append(["testapp.pagedata", "testapp.page", page.pk, "views", 1, TS, {"u": visitor}])
        publish_raw(messages.build(events), "testapp.pagedata")
    return seen, views


def start_worker(env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.chaos.worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.django_db(transaction=True)
def test_two_workers_killed_after_commits_give_the_estimate_of_one_clean_fold(tmp_path):
    from tests.chaos.harness import final_fold

    pages = [Page.objects.create(path=f"/{i}") for i in range(2)]
    seen, views = publish_visits(pages, 300, pool=2500, seed=7)
    # Each worker dies right after its first commit, before the ack (its batch comes back, a duplicate);
    # two at a time fold batches of the same two rows at once.
    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", PYTHONPATH=str(ROOT), TRACKABLE_CHAOS_BATCH="7",
               TRACKABLE_CHAOS_KILL_AFTER_COMMIT="1")
    kills = 0
    with open(tmp_path / "workers.log", "w+") as log:
        for _ in range(6):
            pair = [start_worker(env, log), start_worker(env, log)]
            for worker in pair:
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:  # found the queue empty: it holds nothing, stop it
                    worker.terminate()
                    worker.wait(timeout=30)
                kills += worker.returncode == -signal.SIGKILL
        # On Redis the killed workers' batches come back after the lease: wait for them (duplicates, dropped).
        wait = 3.0 + (redisqueue.LEASE if django_settings.TEST_BROKER == "redis" else 0.0)
        final_fold(wait)
        log.seek(0)
        output = log.read()
    assert kills == 12 and "Traceback" not in output, output[-3000:]
    assert dict(PageData.objects.values_list("object_id", "views")) == views, output[-3000:]
    # The same events again, for two mirror pages, folded by one worker in one clean run.
    mirrors = [Page.objects.create(path=f"/mirror{i}") for i in range(2)]
    mirror_seen, _ = publish_visits(mirrors, 300, pool=2500, seed=7)
    fold(PageData, batch_size=1000)
    for page, mirror in zip(pages, mirrors, strict=False):
        assert seen[page.pk] == mirror_seen[mirror.pk]
        assert uniques.uniques(page, "visitors") == uniques.uniques(mirror, "visitors")
        truth = len(seen[page.pk])
        assert abs(uniques.uniques(page, "visitors").estimate - truth) <= sketches.relative_error() * truth


def fold_at_once(monkeypatch, first_keys: list, second_keys: list, first_visitors: set, second_visitors: set) -> float:
    """Fold visitors into `first_keys`, pausing for a second after its rows are created or locked (before
    it reads a sketch); meanwhile fold visitors into `second_keys`. Return how long the second waited.

    Each adds 5 (first) or 7 (second) views per row.
    """
    import threading
    import time

    from django.db import connections, transaction

    wrote, release, failures = threading.Event(), threading.Event(), []
    read = sketches._OnePass.read

    def pause() -> None:
        if threading.current_thread() is thread and not wrote.is_set():
            wrote.set()
            release.wait(30)

    def paused_read(self, *args):
        pause()
        return read(self, *args)

    monkeypatch.setattr(sketches._OnePass, "read", paused_read)

    def first() -> None:
        try:
            with transaction.atomic():
                sketches.upsert_with_visits(connections["default"], PageData, {k: {"views": 5} for k in first_keys},
                                            {k: {"views": set(first_visitors)} for k in first_keys})
                pause()  # a fold that created every row reads nothing: it pauses before its commit
        except Exception as err:  # reported by the main thread
            failures.append(err)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    assert wrote.wait(30), failures
    timer = threading.Timer(1.0, release.set)
    timer.start()
    started = time.monotonic()
    with transaction.atomic():
        sketches.upsert_with_visits(connection, PageData, {k: {"views": 7} for k in second_keys},
                                    {k: {"views": set(second_visitors)} for k in second_keys})
    waited = time.monotonic() - started
    thread.join(30)
    timer.join()
    monkeypatch.undo()
    assert failures == []
    return waited


@pytest.mark.no_broker
@pytest.mark.django_db(transaction=True)
def test_a_fold_of_the_same_rows_waits_for_the_first_commit_and_unions_onto_it(monkeypatch):
    """Two folds write visitors into the same rows at once: a row that exists, then one that neither saw.

    The second waits for the first one's commit (PostgreSQL: the rows the first created or locked;
    SQLite: its write lock), then reads the committed sketches and unions onto them: no visitor is lost.
    """
    from datetime import timedelta

    from django.contrib.contenttypes.models import ContentType

    page = Page.objects.create(path="/both")
    ct = ContentType.objects.get_for_model(Page).pk
    day1, day2, day3 = (NOON.replace(hour=0) + timedelta(days=d) for d in range(3))
    PageData.objects.create(content_type_id=ct, object_id=page.pk, collected_during=day1, views=10,
                            visitors=sketches.new_sketch(f"{i:016x}" for i in range(10)).serialize_compact())
    first = {f"{i:016x}" for i in range(5, 25)}
    second = {f"{i:016x}" for i in range(20, 40)}
    # The existing row alone: the second fold must not read its sketch before the first one commits.
    keys = [(ct, page.pk, day1), (ct, page.pk, day2)]
    assert fold_at_once(monkeypatch, keys, [(ct, page.pk, day1)], first, second) >= 0.9
    # A row created by the first while the second inserts it too.
    assert fold_at_once(monkeypatch, [(ct, page.pk, day3)], [(ct, page.pk, day3)], first, second) >= 0.9
    rows = dict(PageData.objects.filter(object_id=page.pk).values_list("collected_during", "views"))
    assert rows == {day1: 22, day2: 5, day3: 12}

    def visitors_on(day):
        return uniques.uniques(page, "visitors", day, day + timedelta(days=1))

    assert visitors_on(day1) == sketches.Estimate(40, 40, 40)  # 0-9 stored, 5-24 first, 20-39 second
    assert visitors_on(day2) == sketches.Estimate(20, 20, 20)
    assert visitors_on(day3) == sketches.Estimate(35, 35, 35)


# -- privacy ---------------------------------------------------------------------------------------

IPS = [f"198.51.100.{i}" for i in range(1, 41)]
SESSION_KEYS = [f"zq{i:02d}sessionkey{'x' * 18}" for i in range(20)]


def journal_text() -> str:
    """Return the bytes of every file of the journal folder, as text."""
    folder = Path(django_settings.TRACKABLE_JOURNAL_DIR)
    texts = []
    for path in folder.rglob("*"):
        try:  # the relay renames its temporary files (a checkpoint, a new segment) as it goes
            texts.append(path.read_bytes().decode("latin-1"))
        except (FileNotFoundError, IsADirectoryError):
            continue
    return "\n".join(texts)


def database_text() -> str:
    """Return every value of every table of the database as text (bytes decoded both ways)."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        value = bytes(value)
                        parts += [value.decode("latin-1"), value.hex()]
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


@pytest.mark.django_db(transaction=True)
def test_no_ip_or_session_key_in_the_database_the_queue_or_the_logs(monkeypatch, caplog, salts):
    caplog.set_level(logging.DEBUG)
    bodies: list[bytes] = []
    real_publish = transport.publish

    def recording(body, data_label, *args, **kwargs):
        bodies.append(body)
        return real_publish(body, data_label, *args, **kwargs)

    monkeypatch.setattr(transport, "publish", recording)
    page = Page.objects.create(path="/planted-192.0.2.250")  # proves the grep finds what is there
    factory = RequestFactory()

    class Session:
        def __init__(self, key):
            self.session_key = key

    for ip in IPS:
        messaging.send_increment_message(factory.get("/", REMOTE_ADDR=ip, HTTP_USER_AGENT="Firefox/120"), page, "views")
    with override_settings(TRACKABLE_VISITOR_IDENTITY="session"):
        for key in SESSION_KEYS:
            req = factory.get("/", REMOTE_ADDR="203.0.113.99", HTTP_USER_AGENT="Firefox/120")
            req.session = Session(key)
            messaging.send_message(req, page, {"views": 1, "shares": 1})
    journaled = journal_text()  # the sends' records on the web host's disk, before the relay sends them
    relay.flush()
    publish_raw(b"not json", "testapp.pagedata")  # a malformed message is logged and dead-lettered
    result = fold(PageData)
    assert result.malformed == 1
    assert PageData.objects.aggregate(v=Sum("views"), s=Sum("shares")) == {"v": 60, "s": 20}  # a row a day
    assert uniques.uniques(page, "visitors").estimate == 60
    stored, wire, logs = database_text(), b"\n".join(bodies).decode(), caplog.text
    assert "192.0.2.250" in stored and bodies and "Malformed trackable message" in logs
    assert journaled.count('"u":') >= 80  # this test's 80 visitor events (earlier tests' may remain)
    secrets = IPS + SESSION_KEYS + ["203.0.113.99"]
    places = (("db", stored), ("queue", wire), ("logs", logs), ("journal", journaled))
    found = [(where, s) for s in secrets for where, text in places if s in text]
    assert found == []


# -- accuracy (CI-sized; bench/bench_uniques.py sweeps 1k–10M) -----------------------------------------


@pytest.mark.no_broker
@pytest.mark.parametrize("n", [1_000, 20_000, 200_000])
def test_one_sketch_is_within_its_bound(n):
    sketch = sketches.new_sketch(f"{i:016x}" for i in range(n))
    bound = sketches.relative_error(unioned=False)
    assert abs(sketch.get_estimate() - n) <= bound * n
    low, est, high = sketches.estimate(sketch).lower, sketches.estimate(sketch).estimate, sketches.estimate(sketch).upper
    assert low <= n <= high and low <= est <= high


@pytest.mark.no_broker
def test_a_union_of_365_daily_sketches_is_within_its_bound():
    """365 days of 2 000 visitors each, 1 500 of them new every day: 548 000 distinct in the union."""
    days = [sketches.new_sketch(f"{(d * 1500 + i):016x}" for i in range(2000)).serialize_compact() for d in range(365)]
    truth = 364 * 1500 + 2000
    union = sketches.union(days)
    assert abs(union.get_estimate() - truth) <= sketches.relative_error(unioned=True) * truth
    assert sketches.relative_error(unioned=True) == pytest.approx(0.0318, abs=0.001)
