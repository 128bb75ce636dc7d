"""Broker outages while the site serves: bounded, mailed once off the request thread, spooled, recovered.

The outage is real: the broker sits behind a TCP proxy that the test cuts and restores. With the
embedded filesystem:// broker configured, these tests use RabbitMQ, which has a network to cut.
"""
import logging
import os
import time

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.helpers import fold
from tests.proxy import BrokerProxy
from tests.testapp.models import Article, ArticleTrackableData
from trackable import outage, transport
from trackable.exceptions import TrackableConnectionError
from trackable.messaging import send_increment_message
from trackable.spool import get_spool

pytestmark = pytest.mark.django_db

NETWORK_URL = (
    django_settings.TRACKABLE_BROKER_URL
    if not django_settings.TRACKABLE_BROKER_URL.startswith("filesystem")
    else os.environ.get("TRACKABLE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
)


@pytest.fixture
def proxy():
    p = BrokerProxy(NETWORK_URL)
    transport.reset()
    outage.reset()
    cache.clear()
    yield p
    p.close()
    transport.reset()
    outage.reset()


def through(proxy, **extra):
    return override_settings(TRACKABLE_BROKER_URL=proxy.url, TRACKABLE_CONNECT_TIMEOUT=0.5, **extra)


def fold_direct():
    with override_settings(TRACKABLE_BROKER_URL=NETWORK_URL):
        return fold()


@pytest.fixture(autouse=True)
def empty_network_queues():
    fold_direct()
    yield


def test_views_keep_answering_and_admins_are_mailed_once(client, proxy, caplog):
    article = Article.objects.create(title="a")
    with through(proxy, TRACKABLE_CAPTURE_CONNECTION_ERRORS=True, ADMINS=[("Ops", "ops@example.com")]):
        assert client.get(f"/articles/{article.pk}/").content == f"{article.pk} sent=True".encode()
        proxy.cut()
        responses = [client.get(f"/articles/{article.pk}/") for _ in range(30)]
        notifier = outage.last_notifier()
        notifier.join(10)
    assert [r.status_code for r in responses] == [200] * 30
    assert {r.content for r in responses} == {f"{article.pk} sent=False".encode()}
    assert notifier.name != "MainThread"  # the mail is sent by a background thread, not the request
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[Django] Tracking broker unreachable"
    assert mail.outbox[0].to == ["ops@example.com"]
    assert caplog.text.count("The trackable broker is unreachable") == 1  # one log line per outage


def test_without_capture_the_view_gets_a_clear_exception(client, proxy):
    article = Article.objects.create(title="a")
    proxy.cut()
    with through(proxy):
        with pytest.raises(TrackableConnectionError, match="Could not publish to the trackable broker"):
            client.get(f"/articles/{article.pk}/")


def test_connections_come_back_after_the_outage_without_a_restart(proxy, caplog):
    article = Article.objects.create(title="a")
    caplog.set_level(logging.WARNING, logger="trackable")
    with through(proxy, TRACKABLE_CAPTURE_CONNECTION_ERRORS=True):
        assert send_increment_message(None, article, "impressions") is True
        proxy.cut()
        sent_during = [send_increment_message(None, article, "impressions") for _ in range(5)]
        proxy.restore()
        deadline = time.monotonic() + 10
        while not send_increment_message(None, article, "impressions"):
            assert time.monotonic() < deadline, "publishing did not recover"
            time.sleep(0.1)
    assert sent_during == [False] * 5
    fold_direct()
    assert ArticleTrackableData.objects.get().impressions == 2
    assert "The trackable broker is back after" in caplog.text


def test_spool_keeps_every_event_of_an_outage_and_replays_it(proxy, tmp_path):
    article = Article.objects.create(title="a")
    with through(proxy, TRACKABLE_SPOOL_DIR=str(tmp_path / "spool")):
        proxy.cut()
        assert all(send_increment_message(None, article, "impressions") for _ in range(25))
        spool = get_spool()
        assert len(spool) == 25
        proxy.restore()
        deadline = time.monotonic() + 20
        while len(spool):
            assert time.monotonic() < deadline, f"{len(spool)} messages still spooled"
            time.sleep(0.2)
    result = fold_direct()
    assert (result.messages, result.duplicates) == (25, 0)
    assert ArticleTrackableData.objects.get().impressions == 25


def test_replay_command(proxy, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("trackable.delivery.ensure_replayer", lambda: None)  # only the command replays here
    article = Article.objects.create(title="a")
    with through(proxy, TRACKABLE_SPOOL_DIR=str(tmp_path / "spool")):
        proxy.cut()
        for _ in range(3):
            send_increment_message(None, article, "impressions")
        with pytest.raises(CommandError) as err:
            call_command("trackable_replay_spool")
        assert str(err.value) == "The broker is still unreachable; 3 messages stay spooled."
        proxy.restore()
        transport.reset()  # skip the back-off instead of waiting for it
        call_command("trackable_replay_spool")
    assert capsys.readouterr().out.splitlines()[-1] == "Replayed 3 of 3 spooled messages; 0 left."
    fold_direct()
    assert ArticleTrackableData.objects.get().impressions == 3


def test_replay_command_without_spool():
    with pytest.raises(CommandError) as err:
        call_command("trackable_replay_spool")
    assert str(err.value) == "TRACKABLE_SPOOL_DIR is not set, so there is no spool to replay."
