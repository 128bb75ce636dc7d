"""A real celery worker with beat folds on schedule; the original task name keeps working."""
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.test import override_settings

from tests.testapp.models import Article, ArticleTrackableData
from trackable.messaging import send_increment_message
from trackable.tasks import SCHEDULE_NAME, TASK_NAME, CollectTrackingData, install_schedule

ROOT = Path(__file__).resolve().parent.parent
# django-celery-beat 2.9 installs on Django < 6.1 only (tox.ini); where it is absent its scheduler is
# not a configuration a user can have, so that case is not collected.
SCHEDULERS = ["celery.beat:PersistentScheduler"]
if importlib.util.find_spec("django_celery_beat") is not None:
    SCHEDULERS.append("django_celery_beat.schedulers:DatabaseScheduler")


def test_schedule_entry_for_plain_beat():
    app = Celery("plain", set_as_current=False)
    with override_settings(TRACKABLE_COLLECTION_PERIOD=60):
        assert install_schedule(app) is True
    assert app.conf.beat_schedule[SCHEDULE_NAME] == {"task": TASK_NAME, "schedule": 60.0}
    other = Celery("off", set_as_current=False)
    with override_settings(TRACKABLE_DISABLE_COLLECTION_TASK=True):
        assert install_schedule(other) is False
    assert SCHEDULE_NAME not in other.conf.beat_schedule


def test_original_task_name_is_registered():
    assert CollectTrackingData.name == "trackable.tasks.CollectTrackingData"
    from trackable.tasks import fold_trackable_messages

    assert fold_trackable_messages is CollectTrackingData


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_worker_with_beat_folds_on_schedule(scheduler, tmp_path):
    articles = [Article.objects.create(title=f"a{i}") for i in range(2)]
    for article, n in zip(articles, (5, 2), strict=False):
        for _ in range(n):
            send_increment_message(None, article, "impressions")

    env = dict(os.environ, TRACKABLE_TEST_USE_TEST_DB="1", TRACKABLE_TEST_COLLECTION_PERIOD="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--beat", "--pool=solo",
        "--loglevel=INFO", f"--scheduler={scheduler}", f"--schedule={tmp_path / 'beat-schedule'}",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115 - outlives the worker; closed in the finally
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        rows = []
        database_scheduler = "DatabaseScheduler" in scheduler
        while time.monotonic() < deadline and worker.poll() is None:
            rows = sorted(ArticleTrackableData.objects.values_list("object_id", "impressions"))
            scheduled = not database_scheduler or _periodic_task_exists()
            if sum(n for _, n in rows) >= 7 and scheduled:
                break
            time.sleep(0.5)
        log.seek(0)
        output = log.read()
        assert rows == [(articles[0].pk, 5), (articles[1].pk, 2)], output[-3000:]
        if database_scheduler:
            from django_celery_beat.models import PeriodicTask

            assert _periodic_task_exists(), output[-5000:]
            task = PeriodicTask.objects.get(name=SCHEDULE_NAME)
            assert (task.task, task.interval.every, task.interval.period) == (TASK_NAME, 1, "seconds")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def _periodic_task_exists():
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(name=SCHEDULE_NAME).exists()
