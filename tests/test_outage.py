"""Broker outages while the site serves: the journal keeps every event, admins are mailed once, all is relayed.

The outage is real: the broker sits behind a TCP proxy that the test cuts and restores. With the
embedded filesystem:// broker configured, these tests use RabbitMQ, which has a network to cut.
"""
import logging
import os
import time

import django
import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.helpers import fold
from tests.proxy import BrokerProxy
from tests.testapp.models import Article, ArticleTrackableData
from trackable import outage, relay, transport
from trackable.exceptions import TrackableConnectionError
from trackable.messaging import send_increment_message

# Django 6.0 takes ADMINS as addresses and deprecates (name, address) pairs; 5.2 needs the pairs.
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]

pytestmark = pytest.mark.django_db

AMQP_URL = os.environ.get("TRACKABLE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
NETWORK_URL = (
    django_settings.TRACKABLE_BROKER_URL if not django_settings.TRACKABLE_BROKER_URL.startswith("filesystem") else AMQP_URL
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
    # A cut proxy refuses at once: the timeout only bounds a slow broker's answers, which a loaded CI
    # machine makes slow enough to fail a send at 0.5 s (a confirm that is late, not lost).
    return override_settings(TRACKABLE_BROKER_URL=proxy.url, TRACKABLE_CONNECT_TIMEOUT=2.0, **extra)


def fold_direct():
    with override_settings(TRACKABLE_BROKER_URL=NETWORK_URL):
        return fold()


@pytest.fixture(autouse=True)
def empty_network_queues():
    fold_direct()
    yield


def wait_relayed(timeout: float = 20.0) -> None:
    from trackable.conf import settings

    deadline = time.monotonic() + timeout
    while relay.journal_backlog(settings.journal_dir):
        assert time.monotonic() < deadline, "the journal was not relayed after the outage"
        time.sleep(0.1)


def test_the_journal_keeps_an_outage_and_relays_it_with_one_mail(client, proxy, caplog):
    article = Article.objects.create(title="a")
    caplog.set_level(logging.WARNING, logger="trackable")
    with through(proxy, TRACKABLE_JOURNAL_RELAY_INTERVAL=0.05, ADMINS=ADMINS):
        assert client.get(f"/articles/{article.pk}/").content == f"{article.pk} sent=True".encode()
        wait_relayed()
        proxy.cut()
        responses = [client.get(f"/articles/{article.pk}/") for _ in range(30)]
        deadline = time.monotonic() + 10
        while outage.last_notifier() is None:
            assert time.monotonic() < deadline, "the relay did not notice the outage"
            time.sleep(0.05)
        notifier = outage.last_notifier()
        notifier.join(10)
        time.sleep(0.5)  # more failed relays: still one mail, one log line
        from trackable.status import journal_status

        during = journal_status()
        proxy.restore()
        wait_relayed()
    assert [r.content for r in responses] == [f"{article.pk} sent=True".encode()] * 30
    assert during["backlog_events"] == 60  # the view counts two fields of two data models
    assert notifier.name != "MainThread"  # the mail is sent by a background thread, not the request
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[Django] Tracking broker unreachable"
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "events wait in the trackable journal" in mail.outbox[0].body
    assert caplog.text.count("The trackable broker is unreachable") == 1  # one log line per outage
    assert caplog.text.count("The trackable broker is back after") == 1
    result = fold_direct()
    assert result.duplicates == 0
    assert ArticleTrackableData.objects.get().impressions == 31


def test_direct_publish_views_keep_answering_with_capture(client, proxy, caplog):
    article = Article.objects.create(title="a")
    with through(proxy, TRACKABLE_JOURNAL=False, TRACKABLE_CAPTURE_CONNECTION_ERRORS=True, ADMINS=ADMINS):
        # Warm the connection first: its set-up can pass the timeout on a loaded machine (a CI flake).
        assert any(send_increment_message(None, article, "impressions") for _ in range(3))
        outage.reset(), cache.clear(), mail.outbox.clear(), caplog.clear()  # what a slow warm-up left
        assert client.get(f"/articles/{article.pk}/").content == f"{article.pk} sent=True".encode()
        proxy.cut()
        responses = [client.get(f"/articles/{article.pk}/") for _ in range(30)]
        notifier = outage.last_notifier()
        notifier.join(10)
    assert [r.status_code for r in responses] == [200] * 30
    assert {r.content for r in responses} == {f"{article.pk} sent=False".encode()}
    assert notifier.name != "MainThread"
    assert len(mail.outbox) == 1
    assert "without the journal (TRACKABLE_JOURNAL = False) events are lost" in mail.outbox[0].body
    assert caplog.text.count("The trackable broker is unreachable") == 1


def test_without_capture_the_view_gets_a_clear_exception(client, proxy):
    article = Article.objects.create(title="a")
    proxy.cut()
    refused = pytest.raises(TrackableConnectionError, match="Could not publish to the trackable broker")
    with through(proxy, TRACKABLE_JOURNAL=False), refused:
        client.get(f"/articles/{article.pk}/")


def test_connections_come_back_after_the_outage_without_a_restart(proxy, caplog):
    article = Article.objects.create(title="a")
    caplog.set_level(logging.WARNING, logger="trackable")
    with through(proxy, TRACKABLE_JOURNAL=False, TRACKABLE_CAPTURE_CONNECTION_ERRORS=True):
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
    assert "events were lost meanwhile" in caplog.text


def test_relay_command_during_and_after_an_outage(proxy, capsys):
    article = Article.objects.create(title="a")
    with through(proxy, TRACKABLE_JOURNAL_RELAY_INTERVAL=3600):
        proxy.cut()
        for _ in range(3):
            assert send_increment_message(None, article, "impressions") is True
        with pytest.raises(CommandError) as err:
            call_command("trackable_relay")
        assert str(err.value).startswith("The broker is unreachable (")
        from trackable.conf import settings

        left = relay.journal_backlog(settings.journal_dir)
        assert left > 0
        assert str(err.value).endswith(f"); {left} bytes stay in the journal.")
        proxy.restore()
        transport.reset()  # skip the back-off instead of waiting for it
        call_command("trackable_relay")
    assert capsys.readouterr().out.splitlines()[-1] == "Relayed 3 events; 0 bytes left in the journal; 0 files set aside."
    fold_direct()
    assert ArticleTrackableData.objects.get().impressions == 3


def test_the_relay_waits_for_a_slow_publisher_confirm_instead_of_calling_it_an_outage(capsys):
    # RabbitMQ confirms a persistent message once it is on disk: under load that takes longer than
    # TRACKABLE_CONNECT_TIMEOUT, which bounds a view's wait, not the relay's (a CI run failed so).
    slow = BrokerProxy(AMQP_URL)
    transport.reset()
    article = Article.objects.create(title="a")
    try:
        with override_settings(TRACKABLE_BROKER_URL=slow.url, TRACKABLE_CONNECT_TIMEOUT=0.3):
            assert send_increment_message(None, article, "impressions") is True
            call_command("trackable_relay")  # connects and declares the queue at full speed
            slow.lag = 1.0  # from now on each confirm arrives a second late
            for _ in range(3):
                assert send_increment_message(None, article, "impressions") is True
            call_command("trackable_relay")
    finally:
        slow.close()
        transport.reset()
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "Relayed 3 events; 0 bytes left in the journal; 0 files set aside."
    with override_settings(TRACKABLE_BROKER_URL=AMQP_URL):
        fold()
    assert ArticleTrackableData.objects.get().impressions == 4


@pytest.mark.no_broker
def test_a_mail_server_that_fails_is_logged_and_the_notifier_goes_on(monkeypatch, caplog):
    import smtplib

    from django.core import mail as django_mail

    def refuse(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    cache.clear()
    monkeypatch.setattr(django_mail, "mail_admins", refuse)
    with caplog.at_level(logging.ERROR, logger="trackable"):
        outage._mail_admins("connection refused", 3600, True)  # no exception escapes
    assert [r.getMessage() for r in caplog.records] == ["Could not mail ADMINS about the broker outage."]
    assert "Connection unexpectedly closed" in caplog.text
