"""The journal and its relay: sends cost a local append; every event reaches the rows exactly once.

Kills are real (SIGKILL of a subprocess), the broker and the database are the configured ones.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.helpers import fold, row_counts
from tests.testapp.models import Article, ArticleTrackableData, Video, VideoTrackableData
from trackable import journal, messages, relay, transport
from trackable.messaging import send_decrement_message, send_increment_message, send_message

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "amqp://guest:guest@127.0.0.1:9//"


@pytest.fixture
def scratch():
    """Return a fresh folder inside the repository's tests/ (pytest's shared /tmp folders get pruned by other runs)."""
    import shutil
    import uuid

    folder = ROOT / "tests" / f".journal-scratch-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def segments(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".seg")) if folder.is_dir() else []


def journal_dir() -> Path:
    from trackable.conf import settings

    return settings.journal_dir


def away_from_minute_end() -> None:
    """Wait until the clock is at least 5 s before the next minute, so one test's events share a minute."""
    seconds = time.time() % 60
    if seconds > 55:
        time.sleep(60.5 - seconds)


def run_child(script: str, *, wait: bool = True, **settings_overrides) -> subprocess.Popen:
    """Start a Python process of the test project that runs `script` after django.setup()."""
    prelude = textwrap.dedent(
        f"""
        import django, json, os, sys, time
        django.setup()
        from django.test import override_settings
        override_settings(**json.loads({json.dumps(json.dumps(settings_overrides))})).enable()
        from tests.testapp.models import Article
        from trackable import relay
        from trackable.messaging import send_increment_message
        """
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TRACKABLE_TEST_USE_TEST_DB": "1",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if wait:
        out, err = child.communicate(timeout=60)
        child.out, child.err = out, err
    return child


def test_sends_are_journaled_then_relayed_into_exact_rows(django_assert_num_queries):
    away_from_minute_end()
    a, b = Article.objects.create(title="a"), Article.objects.create(title="b")
    video = Video.objects.create(title="v")
    with django_assert_num_queries(0):
        for _ in range(3):
            assert send_increment_message(None, a, "impressions") is True
        assert send_message(None, a, {"click_throughs": 2, "impressions": 4}) is True
        assert send_increment_message(None, b, "impressions", 5) is True
        assert send_decrement_message(None, a, "impressions", 2) is True
        assert send_increment_message(None, video, "plays") is True
        assert send_increment_message(None, video, "plays") is True
    result = fold()
    assert (result.malformed, result.duplicates) == (0, 0)
    assert [r[2:] for r in row_counts(ArticleTrackableData, "impressions", "click_throughs")] == [(5, 2), (5, 0)]
    assert [r[0] for r in row_counts(ArticleTrackableData)] == [a.pk, b.pk]
    assert list(VideoTrackableData.objects.values_list("object_id", "plays")) == [(video.pk, 2)]
    assert segments(journal_dir()) == segments(journal_dir())[:1]  # at most this process's live segment


def test_the_send_path_neither_publishes_nor_opens_a_socket(monkeypatch, django_assert_num_queries):
    article = Article.objects.create(title="a")
    send_increment_message(None, article, "impressions")  # the first send opens the segment
    relay.flush()
    sender = threading.get_ident()
    seen = []
    real_publish, real_connect, real_send = transport.publish, socket.socket.connect, socket.socket.sendall

    def spy(name, real):
        def wrapper(*args, **kwargs):
            seen.append((name, threading.get_ident() == sender))
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(transport, "publish", spy("publish", real_publish))
    monkeypatch.setattr(socket.socket, "connect", spy("connect", real_connect))
    monkeypatch.setattr(socket.socket, "sendall", spy("sendall", real_send))
    with django_assert_num_queries(0):
        for _ in range(50):
            assert send_increment_message(None, article, "impressions") is True
    assert [name for name, from_sender in seen if from_sender] == []
    deadline = time.monotonic() + 30  # generous: a loaded CI machine
    while relay.journal_backlog(journal_dir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("publish", False) in seen  # the relay thread published them
    fold()
    assert ArticleTrackableData.objects.get().impressions == 51


def test_sending_does_not_import_the_fold():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, sys; django.setup(); import trackable.messaging; "
            "print(sorted(m for m in ('trackable.folding', 'trackable.upsert', 'trackable.ledger') if m in sys.modules)); "
            "from trackable.messaging import process_messages, FoldResult; print(process_messages.__module__)",
        ],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\ntrackable.folding\n", "")


def test_a_killed_process_before_its_relay_published_is_adopted_exactly(scratch):
    """The child's broker is unreachable, so its relay publishes nothing; SIGKILL; this process adopts."""
    child = run_child(
        """
        article = Article(pk=41, title="never saved: the producer needs no database")
        assert all(send_increment_message(None, article, "impressions") for _ in range(500))
        print("sent", flush=True)
        time.sleep(60)
        """,
        wait=False,
        TRACKABLE_BROKER_URL=UNREACHABLE,
        TRACKABLE_CONNECT_TIMEOUT=0.2,
        TRACKABLE_JOURNAL_DIR=str(scratch),  # a folder of its own: no other process of the suite adopts it
    )
    assert child.stdout.readline() == "sent\n", child.stderr.read()
    left = segments(scratch)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert len(left) == 1  # the child's segment is there, unrelayed
    with override_settings(TRACKABLE_JOURNAL_DIR=str(scratch)):
        result = fold()
    assert result.duplicates == 0
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(41, 500)]
    assert segments(scratch) == []  # relayed and deleted


@pytest.mark.parametrize("round", range(int(os.environ.get("KILL_ROUNDS", "1"))))
def test_a_process_killed_while_relaying_is_adopted_exactly(round, scratch):
    """The child relays every 10 ms while it sends; SIGKILL lands at some point of that; nothing lost or doubled."""
    child = run_child(
        """
        article = Article(pk=42, title="never saved")
        for i in range(3000):
            send_increment_message(None, article, "impressions")
            if i == 1500:
                print("half", flush=True)
        print("sent", flush=True)
        time.sleep(60)
        """,
        wait=False,
        TRACKABLE_JOURNAL_RELAY_INTERVAL=0.01,
        TRACKABLE_JOURNAL_DIR=str(scratch),
    )
    assert child.stdout.readline() == "half\n", child.stderr.read()
    assert child.stdout.readline() == "sent\n"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    with override_settings(TRACKABLE_JOURNAL_DIR=str(scratch)):
        fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(42, 3000)]
    assert segments(scratch) == []


@pytest.mark.parametrize("who", ["the same relay", "an adopter reading the checkpoint file"])
def test_a_crash_between_publish_and_checkpoint_republishes_the_same_ids(monkeypatch, who):
    article = Article.objects.create(title="a")
    with override_settings(TRACKABLE_JOURNAL_RELAY_INTERVAL=3600):
        for _ in range(20):
            send_increment_message(None, article, "impressions")
        real_publish = relay._publish_batch

        def publish_then_die(*args):
            real_publish(*args)
            raise SystemExit("relay killed between publish and checkpoint")

        monkeypatch.setattr(relay, "_publish_batch", publish_then_die)
        with pytest.raises(SystemExit):
            relay.flush()
        monkeypatch.setattr(relay, "_publish_batch", real_publish)
        (segment,) = relay.writer().segments
        saved = json.loads(segment.state_path.read_bytes())
        assert saved == {"done": 0, "intent": [0, segment.size]}  # written before the publish
        if who != "the same relay":
            segment.saved, segment.done = None, 0  # what a new process knows: the file
        first = fold()  # (its own flush republishes the recorded batch: the same id twice on the queue)
        assert (first.messages, first.duplicates) == (1, 1)
        assert ArticleTrackableData.objects.get().impressions == 20
        assert fold().messages == 0
        # The batch's "done" is written by the first relay that finds nothing new (here, the last fold's).
        assert json.loads(segment.state_path.read_bytes()) == {"done": segment.size, "intent": None}
        assert len(segment.state_path.read_bytes()) == journal.STATE_BYTES  # rewritten in place


def test_a_batch_published_in_part_is_published_again_whole_by_whoever_relays_next(monkeypatch):
    """The publish fails after the batch's first message, more sends land, the process lets go of its segment."""
    article, video = Article.objects.create(title="a"), Video.objects.create(title="v")
    with override_settings(TRACKABLE_JOURNAL_RELAY_INTERVAL=3600):
        for _ in range(4):
            send_increment_message(None, article, "impressions")
            send_increment_message(None, video, "plays")
        real_publish = transport.publish
        published = []

        def first_only(body, data_label, **kwargs):
            if published:
                raise transport.TrackableConnectionError("the broker went away mid-batch")
            published.append(data_label)
            real_publish(body, data_label, **kwargs)

        monkeypatch.setattr(transport, "publish", first_only)
        with pytest.raises(transport.TrackableConnectionError):
            relay.flush()
        monkeypatch.setattr(transport, "publish", real_publish)
        assert len(published) == 1
        for _ in range(3):  # the same segment: a batch read now would end further on (other ids)
            send_increment_message(None, article, "impressions")
            send_increment_message(None, video, "plays")
        (segment,) = relay.writer().segments
        first_batch = json.loads(segment.state_path.read_bytes())["intent"]
        relay.reset()  # closes the segment: an orphan now, for the next flush to adopt
        assert json.loads(segment.state_path.read_bytes())["intent"] == first_batch  # kept, not overwritten
        result = fold()  # adopts it: the recorded batch (both messages, one a copy), then the rest
    assert result.duplicates == 1
    assert ArticleTrackableData.objects.get().impressions == 7
    assert VideoTrackableData.objects.get().plays == 7


@pytest.mark.parametrize("left", [b"", b"\0" * journal.STATE_BYTES], ids=["empty", "zeroed"])
def test_a_checkpoint_power_loss_left_empty_relays_the_segment_again_counted_once(scratch, left):
    folder = scratch / "journal"
    folder.mkdir()
    records = [journal.encode(event(52, 2)), journal.encode(event(52, 3))]
    name = f"{'a' * 24}.seg"
    with override_settings(TRACKABLE_JOURNAL_DIR=str(folder)):
        write_segment(folder, name, records)
        assert relay.flush(timeout=20) == 2
        assert fold().messages == 1
        write_segment(folder, name, records)  # as it was before the relay (its deletion lost too)
        (folder / f"{'a' * 24}.state").write_bytes(left)
        assert relay.flush(timeout=20) == 2  # from the start again: the same batch, the same message id
        again = fold()
    assert (again.messages, again.duplicates) == (0, 1)  # the ledger knew it
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(52, 5)]
    assert journal.damaged_count(folder) == 0


def test_batch_ids_depend_only_on_the_segment_and_offsets():
    events = [["testapp.articletrackabledata", "testapp.article", 7, "impressions", 1, 1_763_800_020_000]]
    first = relay.batch_messages("a" * 24, 0, 100, events)
    assert first == relay.batch_messages("a" * 24, 0, 100, events)
    assert first[0][1] != relay.batch_messages("a" * 24, 0, 101, events)[0][1]
    assert first[0][1] != relay.batch_messages("b" * 24, 0, 100, events)[0][1]
    assert messages.parse(messages.build(first[0][2], first[0][1])).id == first[0][1]


def test_identical_keys_are_summed_per_minute_keeping_the_minutes_first_time():
    t0 = 1_763_800_020_000  # 2025-11-22 08:27:00 UTC
    a = ["testapp.articletrackabledata", "testapp.article", 7, "impressions"]
    events = [
        [*a, 1, t0 + 5_000],
        [*a, 2, t0 + 59_999],
        [*a, 4, t0 + 60_000],  # the next minute: a key of its own
        [*a[:3], "click_throughs", 3, t0 + 1_000],
        [*a[:3], "click_throughs", -3, t0 + 2_000],  # nets to zero: not sent
        [*a, messages.MAX_AMOUNT, t0 + 120_000],
        [*a, messages.MAX_AMOUNT, t0 + 120_001],  # beyond one event's limit: travels as two events
    ]
    ((label, _, out),) = relay.batch_messages("c" * 24, 0, 1, events)
    assert label == a[0]
    assert [list(e) for e in out] == [
        [*a, 3, t0 + 5_000],
        [*a, 4, t0 + 60_000],
        [*a, messages.MAX_AMOUNT, t0 + 120_000],
        [*a, messages.MAX_AMOUNT, t0 + 120_000],
    ]


# Forking a process whose relay thread runs is the point (gunicorn --preload, Celery prefork): Python 3.12+ warns.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_sends_through_its_own_segment():
    article = Article.objects.create(title="a")
    with override_settings(TRACKABLE_JOURNAL_RELAY_INTERVAL=3600):
        for _ in range(3):
            send_increment_message(None, article, "impressions")
        parent_segment = relay.writer().active.id
        pid = os.fork()
        if pid == 0:  # the child: a segment and a relay of its own; the parent's events are not its own
            code = 1
            try:
                send_increment_message(None, article, "click_throughs", 2)
                mine = relay.writer()
                code = 3 if mine.active.id == parent_segment else 0
                code = code or (0 if relay.flush() == 1 else 4)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert relay.writer().active.id == parent_segment
        fold()
    assert list(ArticleTrackableData.objects.values_list("impressions", "click_throughs")) == [(3, 2)]


def test_a_graceful_exit_relays_the_journal_and_deletes_its_segment():
    before = set(segments(journal_dir()))
    child = run_child(
        """
        article = Article(pk=43, title="never saved")
        for _ in range(7):
            send_increment_message(None, article, "impressions")
        print(relay.writer().active.id)
        """,
        TRACKABLE_JOURNAL_RELAY_INTERVAL=3600,
    )
    assert (child.returncode, child.err) == (0, "")
    assert f"{child.out.strip()}.seg" not in segments(journal_dir())
    assert set(segments(journal_dir())) <= before | set(segments(journal_dir()))
    result = fold()
    assert (result.messages, result.events) == (1, 1)
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(43, 7)]


def test_past_the_cap_sends_are_refused_and_counted(scratch, caplog):
    article = Article(pk=44)
    folder = scratch / "journal"
    with override_settings(
        TRACKABLE_JOURNAL_DIR=str(folder),
        TRACKABLE_JOURNAL_MAX_BYTES=2000,
        TRACKABLE_BROKER_URL=UNREACHABLE,
        TRACKABLE_CONNECT_TIMEOUT=0.2,
        TRACKABLE_JOURNAL_RELAY_INTERVAL=0.05,
    ):
        sent = [send_increment_message(None, article, "impressions") for _ in range(40)]
        accepted = sent.count(True)
        size = sum((folder / n).stat().st_size for n in segments(folder))
        deadline = time.monotonic() + 10
        # The relay writes refused.log, then logs: wait for both (on a loaded machine one comes first).
        while time.monotonic() < deadline and (
            journal.refused_count(folder) < 40 - accepted or "tracking events: the journal holds over" not in caplog.text
        ):
            time.sleep(0.05)
        from trackable.status import journal_status

        status = journal_status()
    assert sent == [True] * accepted + [False] * (40 - accepted)
    assert 0 < accepted < 40 and size <= 2000
    assert journal.refused_count(folder) == 40 - accepted
    assert (status["refused_events"], status["backlog_bytes"], status["backlog_events"]) == (40 - accepted, size, accepted)
    # Logged once when refusing starts, with the refusals the relay had seen by then (all of them, unless
    # it ticked between two of them on a loaded machine); refused.log above has every one.
    logged = re.findall(r"Refused (\d+) tracking events: the journal holds over TRACKABLE_JOURNAL_MAX_BYTES", caplog.text)
    assert len(logged) == 1 and 1 <= int(logged[0]) <= 40 - accepted
    assert journal.damaged_count(folder) == 0


def write_segment(folder: Path, name: str, records: list[bytes]) -> Path:
    path = folder / name
    path.write_bytes(b"".join(records))
    return path


def event(pk: int, amount: int = 1) -> list:
    return [["testapp.articletrackabledata", "testapp.article", pk, "impressions", amount, int(time.time() * 1000)]]


def test_damaged_journal_files_are_set_aside_counted_and_the_rest_relayed(scratch):
    folder = scratch / "journal"
    folder.mkdir()
    good = journal.encode(event(50, 2))
    bad_crc = bytearray(journal.encode(event(51)))
    bad_crc[-3] ^= 0xFF
    write_segment(folder, f"{'1' * 24}.seg", [good, bytes(bad_crc), good])  # 2, then damage: the rest set aside
    write_segment(folder, f"{'2' * 24}.seg", [good, good[:-4]])  # a torn tail (a crash mid-write, power loss)
    write_segment(folder, f"{'3' * 24}.seg", [journal.HEADER.pack(10**9, 0)])  # an absurd length
    write_segment(folder, "garbage_name.msg", [good])
    (folder / f"{'4' * 24}.seg").symlink_to("/dev/zero")
    os.mkfifo(folder / f"{'5' * 24}.seg")
    outside = scratch / "outside.seg"
    outside.write_bytes(good)
    (folder / f"{'6' * 24}.seg").symlink_to(outside)
    (folder / f"{'7' * 24}.state").write_text("{not json")
    write_segment(folder, f"{'7' * 24}.seg", [good])
    (folder / f"{'8' * 24}.state").write_text("[" * 4000)  # nested past the JSON parser's depth
    write_segment(folder, f"{'8' * 24}.seg", [good])
    with override_settings(TRACKABLE_JOURNAL_DIR=str(folder)):
        sent = relay.flush(timeout=20)
        assert relay.flush(timeout=20) == 0  # nothing retried, nothing stuck
    assert sent == 2
    assert segments(folder) == []
    assert journal.damaged_count(folder) == 9  # 6 segments, a bad name, 2 bad checkpoints
    fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(50, 4)]
    assert outside.read_bytes() == good  # a link is moved aside, never followed


def test_relay_command_adopts_orphans(scratch, capsys):
    child = run_child(
        """
        article = Article(pk=45, title="never saved")
        for _ in range(5):
            send_increment_message(None, article, "impressions")
        print("sent", flush=True)
        time.sleep(60)
        """,
        wait=False,
        TRACKABLE_BROKER_URL=UNREACHABLE,
        TRACKABLE_CONNECT_TIMEOUT=0.2,
        TRACKABLE_JOURNAL_DIR=str(scratch),
    )
    assert child.stdout.readline() == "sent\n"
    size = sum((scratch / n).stat().st_size for n in segments(scratch))
    with override_settings(TRACKABLE_JOURNAL_DIR=str(scratch)):
        call_command("trackable_relay")
        assert capsys.readouterr().out == (  # the child lives: its segment is its own relay's
            f"Relayed 0 events; {size} bytes left in the journal; 0 files set aside.\n"
            "What is left belongs to live processes, whose own relays publish it.\n"
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        call_command("trackable_relay")
        assert capsys.readouterr().out == "Relayed 5 events; 0 bytes left in the journal; 0 files set aside.\n"
        with pytest.warns(DeprecationWarning, match="run manage.py trackable_relay"):
            call_command("trackable_replay_spool")
        fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(45, 5)]


@pytest.mark.no_broker
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"TRACKABLE_JOURNAL_MAX_BYTES": 0}, "TRACKABLE_JOURNAL_MAX_BYTES is 0; it must be a positive int."),
        (
            {"TRACKABLE_JOURNAL_RELAY_INTERVAL": "1"},
            "TRACKABLE_JOURNAL_RELAY_INTERVAL is '1'; it must be a positive int or float.",
        ),
        ({"TRACKABLE_JOURNAL": "no"}, "TRACKABLE_JOURNAL is 'no'; it must be True or False."),
    ],
)
def test_bad_journal_settings_are_reported_at_startup(overrides, message):
    from trackable.checks import check_settings

    with override_settings(**overrides):
        errors = check_settings()
    check_id = "trackable.E020" if "TRACKABLE_JOURNAL" in overrides else "trackable.E004"
    assert [(e.id, e.msg) for e in errors] == [(check_id, message)]


@pytest.mark.no_broker
def test_an_unusable_journal_folder_is_reported_at_startup(scratch):
    from trackable.checks import check_journal

    a_file = scratch / "file"
    a_file.write_text("")
    with override_settings(TRACKABLE_JOURNAL_DIR=str(a_file / "journal")):
        (error,) = check_journal()
    assert error.id == "trackable.E030"
    assert error.msg == f"The trackable journal folder {str(a_file / 'journal')!r} cannot be created: Not a directory."
    assert error.hint.startswith("Set TRACKABLE_JOURNAL_DIR to a writable folder")
    read_only = scratch / "ro"
    read_only.mkdir(mode=0o500)
    with override_settings(TRACKABLE_JOURNAL_DIR=str(read_only)):
        errors = [e.msg for e in check_journal()]
    if os.geteuid() != 0:
        assert errors == [f"The trackable journal folder {str(read_only)!r} is not writable by this process."]
    with override_settings(TRACKABLE_JOURNAL_DIR=str(scratch / "new" / "journal")):
        assert check_journal() == []
    with override_settings(TRACKABLE_JOURNAL_DIR=None, TRACKABLE_JOURNAL=False, BASE_DIR=None):
        assert check_journal() == []


@pytest.mark.no_broker
def test_settings_of_replaced_mechanisms_warn_and_say_what_replaced_them():
    from trackable.checks import check_settings
    from trackable.conf import warn_replaced
    from trackable.exceptions import TrackableDeprecationWarning

    with override_settings(TRACKABLE_BUFFER_MAX_EVENTS=1000, TRACKABLE_SPOOL_DIR="/tmp/spool"):
        with pytest.warns(TrackableDeprecationWarning) as caught:
            assert warn_replaced() == ["BUFFER_MAX_EVENTS", "SPOOL_DIR"]
        warnings = [(e.id, e.msg, e.hint) for e in check_settings() if e.id == "trackable.W030"]
    assert [str(w.message) for w in caught] == [
        "The setting TRACKABLE_BUFFER_MAX_EVENTS is deprecated and ignored: the journal's relay now sends many "
        "events per message on its own (TRACKABLE_JOURNAL); remove it.",
        "The setting TRACKABLE_SPOOL_DIR is deprecated and ignored: the journal keeps the events of a broker "
        "outage; use TRACKABLE_JOURNAL_DIR to choose its folder.",
    ]
    assert warnings[1] == (
        "trackable.W030",
        "TRACKABLE_SPOOL_DIR belongs to a mechanism the journal replaced; it is ignored.",
        "The journal keeps the events of a broker outage; use TRACKABLE_JOURNAL_DIR to choose its folder.",
    )


def test_status_and_dashboard_show_the_journal(scratch, capsys, client, django_user_model):
    folder = scratch / "journal"
    article = Article(pk=46)
    with override_settings(
        TRACKABLE_JOURNAL_DIR=str(folder), TRACKABLE_BROKER_URL=UNREACHABLE, TRACKABLE_CONNECT_TIMEOUT=0.2
    ):
        for _ in range(4):
            assert send_increment_message(None, article, "impressions") is True
        size = sum((folder / n).stat().st_size for n in segments(folder))
        call_command("trackable_status", "--no-broker")
        lines = capsys.readouterr().out.splitlines()
        staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
        client.force_login(staff)
        from django.urls import reverse

        page = client.get(reverse("trackable:dashboard"), {"days": 1}).content.decode()
    assert lines[0] == f"Sending: through the journal in {folder}"
    assert lines[1].startswith(f"  backlog: 4 events in {size} bytes, oldest ")
    assert lines[1].endswith("s old; 1 segments, 0 orphaned")
    assert lines[2] == "  refused (over TRACKABLE_JOURNAL_MAX_BYTES): 0 events; damaged files set aside: 0"
    assert f'<td class="trackable-journal-backlog">4 events, {size} bytes' in page
    assert '<td class="trackable-orphans">0</td>' in page
    assert '<td class="trackable-refused">0</td>' in page
    with override_settings(TRACKABLE_JOURNAL=False):
        call_command("trackable_status", "--no-broker")
    assert capsys.readouterr().out.splitlines()[0] == "Sending: direct publish from the request (TRACKABLE_JOURNAL = False)"


def test_threads_sending_at_once_are_all_counted():
    article = Article.objects.create(title="a")
    results = []

    def work():
        results.extend(send_increment_message(None, article, "impressions") for _ in range(500))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fold()
    assert results.count(True) == 4000
    assert ArticleTrackableData.objects.get().impressions == 4000


def test_an_adopter_never_sees_a_segment_before_its_owner_locks_it(monkeypatch, scratch, caplog):
    # An adopter (another process's relay, the fold, trackable_relay) that scans the folder between the
    # creation of a new segment and its owner's flock must not take the lock: that refused the first send
    # of a thread ("[Errno 11] Resource temporarily unavailable", seen once in CI with 8 threads).
    folder = scratch / "journal"
    real_flock = journal.fcntl.flock
    looked, adopted = [], []

    def flock_after_an_adopter_looked(fd, operation):
        monkeypatch.setattr(journal.fcntl, "flock", real_flock)  # the adopter's own flock is the real one
        for name, _ in journal.scan(folder):
            looked.append(name)
            orphan = journal.open_orphan(folder, name)
            if orphan is not None:
                adopted.append(name)
                orphan.close()
        return real_flock(fd, operation)

    article = Article.objects.create(title="a")
    with override_settings(TRACKABLE_JOURNAL_DIR=str(folder)):
        monkeypatch.setattr(journal.fcntl, "flock", flock_after_an_adopter_looked)
        sent = send_increment_message(None, article, "impressions")
        assert journal.fcntl.flock is real_flock  # the owner did lock a new segment, after the adopter looked
        fold()
    assert sent is True
    assert adopted == [] and looked == []
    assert ArticleTrackableData.objects.get().impressions == 1
    assert "Refused" not in caplog.text


def test_a_hidden_file_left_by_a_dead_creator_is_removed_after_an_hour(scratch):
    folder = journal_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / ".0123456789abcdef01234567.seg.new"
    young = folder / ".0123456789abcdef01234568.seg.new"
    stale.write_bytes(b"")
    young.write_bytes(b"")
    an_hour_ago = time.time() - journal.HIDDEN_LIFETIME - 1
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert list(journal.scan(folder)) == []
    assert not stale.exists()
    assert young.exists()


def test_under_steady_traffic_the_relay_publishes_once_per_interval_not_per_event(monkeypatch, scratch):
    # A relay that chased the appends landing while it published sent (and confirmed, and checkpointed)
    # a message every few events: on RabbitMQ that cost the web workers a fifth of their throughput.
    real_publish = transport.publish
    published = []

    def publish_like_a_broker_with_confirms(body, data_label, **kwargs):
        time.sleep(0.004)  # a publisher confirm's round trip
        published.append(data_label)
        real_publish(body, data_label, **kwargs)

    monkeypatch.setattr(transport, "publish", publish_like_a_broker_with_confirms)
    article = Article.objects.create(title="a")
    with override_settings(TRACKABLE_JOURNAL_DIR=str(scratch / "journal"), TRACKABLE_JOURNAL_RELAY_INTERVAL=0.2):
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 1.2:  # about 1,000 sends a second for 1.2 s
            assert send_increment_message(None, article, "impressions") is True
            sent += 1
            time.sleep(0.001)
        relay.flush()
        fold()
    assert ArticleTrackableData.objects.get().impressions == sent
    assert len(published) <= 10  # ~7 ticks of 0.2 s and the flush, one message each


def test_segments_rotate_at_a_size_and_relayed_ones_are_deleted(monkeypatch, scratch):
    monkeypatch.setattr(relay, "SEGMENT_BYTES", 500)
    article = Article(pk=47)
    with override_settings(TRACKABLE_JOURNAL_DIR=str(scratch), TRACKABLE_JOURNAL_RELAY_INTERVAL=3600):
        for _ in range(10):  # about 930 bytes: past the rotation size
            send_increment_message(None, article, "impressions")
        first = relay.writer().active.id
        relay.flush()
        assert segments(scratch) == []  # relayed, rotated away and deleted
        send_increment_message(None, article, "impressions")
        assert relay.writer().active.id != first  # the next send opened a new segment
        assert segments(scratch) == [f"{relay.writer().active.id}.seg"]
        fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(47, 11)]


def test_fsync_flushes_every_record(monkeypatch, scratch):
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append(fd) or real(fd))
    article = Article(pk=48)
    with override_settings(TRACKABLE_JOURNAL_DIR=str(scratch), TRACKABLE_JOURNAL_FSYNC=True):
        for _ in range(3):
            assert send_increment_message(None, article, "impressions") is True
        assert synced == [relay.writer().active.fd] * 3
        fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(48, 3)]


def test_a_send_too_large_for_one_record_raises_at_the_call():
    from trackable.messaging import TrackableMessage

    class Huge(TrackableMessage):
        def events(self):
            return [("impressions", 1)] * 5000

    with pytest.raises(ValueError) as err:
        Huge(None, Article(pk=49)).send()
    assert str(err.value).startswith("One send carries 5000 events (")
    assert str(err.value).endswith("bytes); the journal takes at most 262144 bytes per send: send them in several calls.")


@pytest.mark.parametrize(
    "events",
    [
        [("testapp.articletrackabledata", "testapp.article", 7, "impressions", 1, 1_700_000_000_123)],
        [("testapp.articletrackabledata", "testapp.article", -2**63, "impressions", -3, 0)],
        [("testapp.articletrackabledata", "testapp.article", "a\"b\\c\u00e9\n", "impressions", 1, 5)],  # a str pk
        [("testapp.vues", "testapp.article", 7, "vu\u00e9s", 1, 5)],  # a non-ASCII field name: escaped
        [("testapp.a\"b", "testapp.c\\d", 7, "e\nf\x7f", 1, 5)],  # what JSON escapes, in a custom message's names
        [("testapp.storyreferrers", "testapp.story", 7, "views", 1, 5, {"d": {"referrer": "x\"y"}})],
        [["testapp.articletrackabledata", "testapp.article", 7, "impressions", 1, 5]],  # a list
        [("testapp.articletrackabledata", "testapp.article", 7, "impressions", 1, 5)] * 3,
    ],
)
def test_a_record_carries_exactly_the_json_of_its_events(events):
    record = journal.encode(events)
    length, crc = journal.HEADER.unpack_from(record)
    payload = record[journal.HEADER.size :]
    assert len(payload) == length
    assert payload == json.dumps(events, separators=(",", ":")).encode("ascii")
    assert json.loads(payload) == [list(e) for e in events]


def test_records_the_journal_never_writes_are_read_as_json_reads_them(scratch):
    import zlib

    def record(payload: bytes) -> bytes:
        return journal.HEADER.pack(len(payload), zlib.crc32(payload)) + payload

    one = b'[["testapp.articletrackabledata","testapp.article",1,"impressions",1,5]]'
    spaced = b' [ ["testapp.articletrackabledata", "testapp.article", 2, "impressions", 1, 5] ] '
    utf8 = '[["testapp.articletrackabledata","testapp.article","\u00e9",  "impressions",1,5]]'.encode()
    # Two records that are not lists of events alone but would be inside one joined array.
    split = [b'[["testapp.articletrackabledata","testapp.article",3,"impressions",1,5]],[', b"1]"]
    def read(*records: bytes) -> tuple[list, int, str | None]:
        path = scratch / "records.seg"
        path.write_bytes(b"".join(records))
        fd = os.open(path, os.O_RDONLY)
        try:
            return journal.read_records(fd, 0, 1_000_000)
        finally:
            os.close(fd)

    events, end, problem = read(record(one), record(spaced), record(one), record(split[0]), record(split[1]))
    assert [e[2] for e in events] == [1, 2, 1]
    bad_at = len(record(one) + record(spaced) + record(one))
    assert (end, problem) == (bad_at, f"the record at byte {bad_at} is not a list of events")
    nested = b"[" * 100_000 + b"]" * 100_000  # deeper than the parser goes: a RecursionError, not a crash loop
    events, end, problem = read(record(one), record(nested))
    assert [e[2] for e in events] == [1]
    assert (end, problem) == (len(record(one)), f"the record at byte {len(record(one))} is not a list of events")
    events, end, problem = read(record(one), record(utf8), record(one))
    assert [e[2] for e in events] == [1, "\u00e9", 1]
    assert (end, problem) == (len(record(one) + record(utf8) + record(one)), None)
