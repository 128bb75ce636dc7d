"""trackable_status and trackable.status: queue depths, dead letters, folds recorded, checks of operations."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import models
from django.test import override_settings
from django.test.utils import isolate_apps
from django.utils import timezone

import trackable
from tests.testapp.models import Article, ArticleTrackableData
from trackable import transport
from trackable.checks import _check_data_models, check_operations
from trackable.folding import FoldResult, process_messages
from trackable.messaging import send_increment_message
from trackable.models import FoldRun
from trackable.status import collect_status, record_fold_run

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "testapp.articletrackabledata"


def queue(status, label=LABEL):
    return next(q for q in status["queues"] if q["data_model"] == label)


def wait_for_depth(n, label=LABEL):
    """Return the status once the broker shows `n` messages in the queue (publishing is asynchronous)."""
    deadline = time.monotonic() + 10
    while True:
        status = collect_status()
        if queue(status, label)["messages"] == n or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_an_idle_pipeline():
    status = collect_status()
    assert status["broker_error"] is None
    assert {q["data_model"] for q in status["queues"]} >= {LABEL, "testapp.videotrackabledata"}
    assert status["queued_messages"] == 0
    assert status["dead_letters"]["messages"] == 0
    assert status["oldest_unfolded_age"] is None
    assert status["last_fold"] is None
    assert status["ledger"]["folded_messages"] == 0


@pytest.mark.usefixtures("direct_publish")
def test_queued_messages_then_a_fold(settings):
    article = Article(pk=7)
    for _ in range(3):
        assert send_increment_message(None, article, "impressions")
    status = wait_for_depth(3)
    assert queue(status)["messages"] == 3
    assert status["queued_messages"] == 3
    if settings.TEST_BROKER == "amqp":
        assert status["oldest_unfolded_age"] is None
        assert status["oldest_unfolded_note"] == "AMQP cannot show a queued message without taking it off the queue"
    else:
        assert 0 <= status["oldest_unfolded_age"] < 60
    result = process_messages(idle_timeout=0.3)
    assert result.events == 3
    status = wait_for_depth(0)
    assert status["queued_messages"] == 0
    assert status["last_fold"]["events"] == 3
    assert status["last_fold"]["messages"] == 3
    assert status["folds_last_hour"]["events"] == 3
    assert status["ledger"]["folded_messages"] == 3
    assert ArticleTrackableData.objects.get().impressions == 3


def test_dead_letters_are_counted():
    transport.publish(b'{"v": 1}', LABEL)
    wait_for_depth(1)
    assert process_messages(idle_timeout=0.3).malformed == 1
    deadline = time.monotonic() + 10
    while collect_status()["dead_letters"]["messages"] != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert collect_status()["dead_letters"]["messages"] == 1


def test_command_text_and_json():
    record_fold_run(FoldResult(messages=2, events=50, rows=4, seconds=0.5))
    out = StringIO()
    call_command("trackable_status", stdout=out)
    text = out.getvalue()
    assert f"  {LABEL}: 0 queued messages\n" in text
    assert "Last hour: 1 folds, 50 events from 2 messages\n" in text
    assert ": 50 events from 2 messages in 0.50s, 100 events/s\n" in text
    out = StringIO()
    call_command("trackable_status", "--json", stdout=out)
    facts = json.loads(out.getvalue())
    assert facts["last_fold"]["events_per_second"] == 100.0
    assert facts["queued_messages"] == 0


@pytest.mark.no_broker
def test_an_unreachable_broker_is_reported_and_fails_the_command():
    with override_settings(TRACKABLE_BROKER_URL="amqp://guest:secret@127.0.0.1:1//", TRACKABLE_CONNECT_TIMEOUT=0.5):
        status = collect_status()
        assert status["broker"] == "amqp://guest:**@127.0.0.1:1//"
        assert status["broker_error"] == "OperationalError: [Errno 111] Connection refused"
        out = StringIO()
        with pytest.raises(CommandError) as err:
            call_command("trackable_status", "--json", stdout=out)
        assert str(err.value).startswith("The trackable broker is unreachable: ")
        assert json.loads(out.getvalue())["queues"] == []
        out = StringIO()
        call_command("trackable_status", "--no-broker", stdout=out)
        assert out.getvalue().startswith("Sending: through the journal in ")
        assert "\nBroker: not asked\nLast fold: none recorded\n" in out.getvalue()


@pytest.mark.no_broker
def test_old_fold_runs_are_forgotten():
    FoldRun.objects.create(finished_at=timezone.now() - timedelta(days=30), seconds=1)
    record_fold_run(FoldResult(events=1, seconds=1))
    assert list(FoldRun.objects.values_list("events", flat=True)) == [1]


@pytest.mark.no_broker
def test_a_disabled_collection_task_needs_another_schedule():
    from trackable.tasks import SCHEDULE_NAME, TASK_NAME

    own = {SCHEDULE_NAME: {"task": TASK_NAME, "schedule": 1800.0}}  # installed before the setting changed
    with override_settings(TRACKABLE_DISABLE_COLLECTION_TASK=True, CELERY_BEAT_SCHEDULE=own):
        [warning] = [e for e in check_operations() if e.id == "trackable.W010"]
        assert warning.msg == (
            "TRACKABLE_DISABLE_COLLECTION_TASK is on and no Celery beat entry runs trackable.tasks.CollectTrackingData, "
            "so tracking messages pile up in the queues unfolded."
        )
        schedule = {"fold": {"task": "trackable.tasks.CollectTrackingData", "schedule": 60.0}}
        with override_settings(CELERY_BEAT_SCHEDULE=schedule):
            assert [e for e in check_operations() if e.id == "trackable.W010"] == []
    assert [e for e in check_operations() if e.id == "trackable.W010"] == []


@pytest.mark.no_broker
@isolate_apps("tests.legacyapp")
def test_data_models_without_counters_or_registration():
    class Empty(trackable.TrackableTimeSeriesData):
        note = models.CharField(max_length=10)

        class Meta(trackable.TrackableTimeSeriesData.Meta):
            app_label = "legacyapp"

    class Orphan(trackable.TrackableTimeSeriesData):
        hits = models.PositiveIntegerField(default=0)

        class Meta(trackable.TrackableTimeSeriesData.Meta):
            app_label = "legacyapp"

    found = _check_data_models([Empty, Orphan])
    assert [(e.id, e.msg) for e in found] == [
        ("trackable.W012", "The data model legacyapp.Empty has no counter field, so it cannot count anything."),
        (
            "trackable.W011",
            "The data model legacyapp.Orphan is not registered with trackable.site, so nothing is ever counted into it.",
        ),
    ]


@pytest.mark.no_broker
@pytest.mark.parametrize(
    "value, message",
    [
        (
            "tests.nowhere.resolve",
            "TRACKABLE_IMPORT_RESOLVER is 'tests.nowhere.resolve', which cannot be imported: No module named 'tests.nowhere'.",
        ),
        ("tests.importurls.urlpatterns", "TRACKABLE_IMPORT_RESOLVER names [<URLPattern"),
    ],
)
def test_an_unusable_import_resolver(value, message):
    with override_settings(TRACKABLE_IMPORT_RESOLVER=value):
        [error] = [e for e in check_operations() if e.id == "trackable.E011"]
    assert error.msg.startswith(message)


@pytest.mark.django_db
def test_quiet_folds_do_not_add_a_row_each():
    from trackable.folding import FoldResult
    from trackable.models import FoldRun
    from trackable.status import record_fold_run

    for _ in range(5):
        record_fold_run(FoldResult())
    assert FoldRun.objects.count() == 1
    record_fold_run(FoldResult(messages=2, events=2, rows=1))
    record_fold_run(FoldResult())
    record_fold_run(FoldResult())
    assert list(FoldRun.objects.order_by("finished_at").values_list("messages", flat=True)) == [0, 2, 0]
