"""The filesystem:// queue reads only regular files: links, FIFOs and huge files are set aside and counted.

These tests run on every database; they point the broker at a filesystem:// queue of their own.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.helpers import fold
from tests.testapp.models import Article, ArticleTrackableData
from trackable import fsqueue, transport
from trackable.messaging import send_increment_message
from trackable.status import collect_status

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]
LABEL = "testapp.articletrackabledata"


@pytest.fixture
def queue_dir(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    with override_settings(TRACKABLE_BROKER_URL="filesystem://", TRACKABLE_QUEUE_DIR=str(folder)):
        fsqueue.Channel.corrupt_files = 0
        yield folder
    transport.reset()


def message_name(queue: str, ms: int = 1) -> str:
    """A name sorting before every real message of `queue` (so it is taken first)."""
    return f"{ms:014d}_{uuid.uuid4().hex}.{queue}.msg"


def queued_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".msg") and not p.name.startswith("."))


@pytest.mark.usefixtures("direct_publish")  # one message file per send, at the call
def test_fifo_links_and_huge_files_are_set_aside_counted_and_never_read(queue_dir, tmp_path):
    article = Article.objects.create(title="a")
    for _ in range(3):
        assert send_increment_message(None, article, "impressions")
    queue = transport.queue_for(LABEL).name
    # A real message moved outside the folder, then linked back in: its event must not be counted.
    outside = tmp_path / "outside.msg"
    shutil.move(queued_files(queue_dir)[0], outside)
    original = outside.read_bytes()
    os.symlink(outside, queue_dir / message_name(queue, 1))
    os.symlink("/dev/zero", queue_dir / message_name(queue, 2))
    os.mkfifo(queue_dir / message_name(queue, 3))  # on main, the fold blocks opening it
    (queue_dir / message_name(queue, 4)).write_bytes(b" " * (fsqueue.envelope_limit() + 1))

    result = fold()

    assert (result.messages, result.events) == (2, 2)
    assert result.reasons["corrupt queue file"] == 4
    assert ArticleTrackableData.objects.get().impressions == 2
    assert outside.read_bytes() == original  # the target was neither read into the queue nor moved
    aside = sorted((queue_dir / "corrupt").iterdir())
    assert len(aside) == 4
    assert sum(p.is_symlink() for p in aside) == 2  # the links themselves, not copies of their targets
    assert queued_files(queue_dir) == []
    assert collect_status()["set_aside_files"] == 4


@pytest.mark.usefixtures("direct_publish")  # one message file per send, at the call
def test_status_does_not_block_on_a_fifo_and_reports_set_aside_files(queue_dir):
    article = Article.objects.create(title="a")
    assert send_increment_message(None, article, "impressions")
    queue = transport.queue_for(LABEL).name
    os.mkfifo(queue_dir / message_name(queue, 1))  # the oldest file the status reads
    (queue_dir / "corrupt").mkdir()
    (queue_dir / "corrupt" / "x.msg").write_bytes(b"junk")

    status = collect_status()

    row = next(q for q in status["queues"] if q["data_model"] == LABEL)
    assert row["messages"] == 2
    assert row["oldest_event_age"] is not None  # the real message after the FIFO was read
    assert status["set_aside_files"] == 1
    out = __import__("io").StringIO()
    call_command("trackable_status", stdout=out)
    assert "set aside (not messages: links, FIFOs, corrupt files): 1 in corrupt/" in out.getvalue()


def test_read_message_file_refuses_what_is_not_a_bounded_regular_file(tmp_path):
    regular = tmp_path / "m"
    regular.write_bytes(b"12345")
    assert fsqueue.read_message_file(str(regular), 5) == b"12345"
    with pytest.raises(fsqueue.NotAMessageFile, match="more than the 4 bytes"):
        fsqueue.read_message_file(str(regular), 4)
    os.symlink(regular, tmp_path / "link")
    with pytest.raises(fsqueue.NotAMessageFile, match="symbolic link is never followed"):
        fsqueue.read_message_file(str(tmp_path / "link"), 100)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(fsqueue.NotAMessageFile, match="not a regular file"):
        fsqueue.read_message_file(str(tmp_path / "fifo"), 100)
    with pytest.raises(FileNotFoundError):
        fsqueue.read_message_file(str(tmp_path / "missing"), 100)


@pytest.mark.usefixtures("direct_publish")
def test_a_batch_that_fails_gives_its_files_back_and_the_next_fold_counts_them_once(queue_dir, monkeypatch):
    from trackable import folding

    article = Article.objects.create(title="a")
    for _ in range(5):
        assert send_increment_message(None, article, "impressions")
    real = folding.fold_batch

    def failing(batch, channel):
        assert {type(m) for m in batch} == {fsqueue.FileMessage}  # the fold took them itself, not through kombu
        raise RuntimeError("the database went away")

    monkeypatch.setattr(folding, "fold_batch", failing)
    with pytest.raises(RuntimeError, match="the database went away"):
        fold()
    assert len(queued_files(queue_dir)) == 5  # given back at once, under their queue names
    assert not [p for p in queue_dir.iterdir() if p.name.endswith(".claimed")]
    monkeypatch.setattr(folding, "fold_batch", real)
    result = fold()
    assert (result.messages, result.duplicates) == (5, 0)
    assert ArticleTrackableData.objects.get().impressions == 5
    assert queued_files(queue_dir) == []


@pytest.mark.usefixtures("direct_publish")
def test_the_batch_claimed_while_one_commits_goes_back_when_that_one_fails(queue_dir, monkeypatch):
    from trackable import folding

    article = Article.objects.create(title="a")
    for _ in range(25):
        assert send_increment_message(None, article, "impressions")
    real, calls = folding.fold_batch, []

    def second_fails(batch, channel):
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(batch, channel)

    monkeypatch.setattr(folding, "fold_batch", second_fails)
    with pytest.raises(RuntimeError, match="the database went away"):
        fold(batch_size=10)
    # The first batch committed and its files are gone; the second and the third (claimed meanwhile,
    # in the file thread) are back under their queue names.
    assert calls == [10, 10]
    assert ArticleTrackableData.objects.get().impressions == 10
    assert len(queued_files(queue_dir)) == 15
    assert not [p for p in queue_dir.iterdir() if p.name.endswith(".claimed")]
    monkeypatch.setattr(folding, "fold_batch", real)
    result = fold(batch_size=10)
    assert (result.messages, result.duplicates, result.batches) == (15, 0, 2)
    assert ArticleTrackableData.objects.get().impressions == 25
    assert queued_files(queue_dir) == []


@pytest.mark.usefixtures("direct_publish")
def test_a_committed_batch_whose_files_cannot_be_removed_raises_and_is_counted_once(queue_dir, monkeypatch):
    article = Article.objects.create(title="a")
    for _ in range(5):
        assert send_increment_message(None, article, "impressions")

    def refused(paths):
        raise PermissionError(13, "Permission denied", paths[0])

    monkeypatch.setattr(fsqueue, "_remove_files", refused)
    with pytest.raises(PermissionError, match="Permission denied"):
        fold()
    assert ArticleTrackableData.objects.get().impressions == 5  # committed once; the files stay claimed
    assert len([p for p in queue_dir.iterdir() if p.name.endswith(".claimed")]) == 5
    assert queued_files(queue_dir) == []


@pytest.mark.usefixtures("direct_publish")
def test_an_envelope_whose_body_cannot_be_decoded_is_set_aside(queue_dir):
    article = Article.objects.create(title="a")
    assert send_increment_message(None, article, "impressions")
    queue = transport.queue_for(LABEL).name
    bad = queue_dir / message_name(queue, 1)
    bad.write_bytes(b'{"body": "***not base64***", "properties": {"delivery_tag": "t1", "body_encoding": "base64"}}')
    result = fold()
    assert (result.messages, result.events, result.reasons["corrupt queue file"]) == (1, 1, 1)
    assert [p.name for p in (queue_dir / "corrupt").iterdir()] == [bad.name]
