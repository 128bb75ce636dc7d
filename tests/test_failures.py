"""The database fails in the middle of a fold: nothing uncommitted is acked; the next fold is exact."""
import time

import pytest
from django.db import OperationalError, connection

from tests.helpers import fold
from tests.testapp.models import Article, ArticleTrackableData
from trackable import folding
from trackable.messaging import send_increment_message
from trackable.models import FoldedMessage


def break_the_database_on_call(n, monkeypatch):
    """Make the n-th upsert fail like a database that went away (for real on PostgreSQL)."""
    real = folding.upsert_increments
    calls = []

    def upsert(conn, model, totals):
        calls.append(model)
        if len(calls) == n:
            if conn.vendor == "postgresql":
                with conn.cursor() as cursor:  # the server kills this very connection
                    cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            raise OperationalError("database went away during the fold")
        return real(conn, model, totals)

    monkeypatch.setattr(folding, "upsert_increments", upsert)
    return calls


@pytest.mark.usefixtures("direct_publish")
@pytest.mark.django_db(transaction=True)
def test_database_failure_mid_fold_loses_and_doubles_nothing(monkeypatch):
    articles = [Article.objects.create(title=f"a{i}") for i in range(4)]
    for i in range(40):
        send_increment_message(None, articles[i % 4], "impressions")
    break_the_database_on_call(3, monkeypatch)

    with pytest.raises(OperationalError):
        fold(ArticleTrackableData, batch_size=10)

    connection.close()  # what the fold loop does with a broken connection
    monkeypatch.undo()
    committed = sum(ArticleTrackableData.objects.values_list("impressions", flat=True))
    assert committed == 20  # two batches committed and acked, the third rolled back
    assert FoldedMessage.objects.count() == 20

    result = fold(ArticleTrackableData, batch_size=10)

    assert result.duplicates == 0  # the failed batch was neither committed nor acked
    assert result.messages == 20
    assert sorted(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [
        (a.pk, 10) for a in articles
    ]


@pytest.mark.usefixtures("direct_publish")
@pytest.mark.django_db(transaction=True)
def test_fold_loop_survives_a_database_failure(monkeypatch, capsys):
    from django.core.management import call_command

    article = Article.objects.create(title="a")
    for _ in range(5):
        send_increment_message(None, article, "impressions")
    calls = break_the_database_on_call(1, monkeypatch)
    sleeps = []
    real_sleep = time.sleep

    def stop_after_two(seconds):
        if seconds != 0.01:  # a sleep inside the fold, not the loop's
            return real_sleep(seconds)
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("trackable.management.commands.fold_trackable_messages.time.sleep", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        call_command("fold_trackable_messages", "--loop", "--interval", "0.01")
    assert len(calls) == 2  # failed once, then folded on the next round
    assert ArticleTrackableData.objects.get().impressions == 5
    assert "Folded 5 events from 5 messages into 1 rows" in capsys.readouterr().out
