"""manage.py import_access_log and import_events: exact rows, broken lines, filters, re-imports."""
from __future__ import annotations

import gzip
import io
import json
import sys
import types
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.testapp.models import Article, ArticleTrackableData, Player, PlayerTrackableData, VideoTrackableData
from trackable.models import ImportedChunk

VIDEO = uuid.UUID("12345678-1234-5678-1234-567812345678")
IMPORT_SETTINGS = dict(
    ROOT_URLCONF="tests.importurls",
    STATIC_URL="/static/",
    TRACKABLE_IMPORT_URLS={"article": "testapp.Article.impressions", "video-play": "testapp.Video.plays"},
)
pytestmark = [pytest.mark.django_db, pytest.mark.no_broker, pytest.mark.usefixtures("import_settings")]


@pytest.fixture
def import_settings():
    with override_settings(**IMPORT_SETTINGS):
        yield


def line(path="/articles/1/", ts="10/Jan/2026:10:15:00 +0000", status=200, method="GET", agent="Mozilla/5.0 (X11)"):
    return f'203.0.113.9 - - [{ts}] "{method} {path} HTTP/1.1" {status} 512 "https://example.com/" "{agent}"\n'


LOG = "".join([
    line(),
    line(ts="10/Jan/2026:23:59:59 +0000"),
    line(ts="11/Jan/2026:00:30:00 +0100"),  # 23:30 UTC on the 10th
    line(ts="11/Jan/2026:00:30:00 +0000"),
    line("/articles/2/?utm_source=x"),
    line("/articles/2/", status=404),
    line("/articles/1/", method="POST"),
    line("/articles/1/", status=304),
    line("/static/site.css"),
    line("/favicon.ico"),
    line("/nowhere/"),
    line("/articles/abc/"),
    line("/about/"),
    line("/players/alice/"),
    line(f"/videos/{VIDEO}/play/", ts="10/Jan/2026:10:15:30 +0000"),
    line(f"/videos/{VIDEO}/play/", ts="10/Jan/2026:10:16:00 +0000", agent="Googlebot/2.1"),
    "this is not a log line\n",
    '203.0.113.9 - - [10/Jan/2026:10:15:00 +0000] "GET /articles/1/ HTT\n',
    "\n",
    line(ts="32/Foo/2026:10:15:00 +0000"),
])


def run(*args, **files) -> str:
    out = StringIO()
    call_command("import_access_log", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "access.log"
    path.write_text(LOG)
    return path


def article_rows():
    return sorted((r.object_id, r.collected_during.isoformat(), r.impressions) for r in ArticleTrackableData.objects.all())


def test_a_log_becomes_exact_rows_in_the_buckets_of_its_timestamps(log_file):
    out = run(str(log_file))
    assert article_rows() == [
        (1, "2026-01-10T00:00:00+00:00", 3),
        (1, "2026-01-11T00:00:00+00:00", 1),
        (2, "2026-01-10T00:00:00+00:00", 1),
    ]
    assert list(PlayerTrackableData.objects.values_list("object_id", "quests")) == [("alice", 1)]
    assert sorted((r.collected_during.isoformat(), r.plays) for r in VideoTrackableData.objects.all()) == [
        ("2026-01-10T10:15:00+00:00", 1),
        ("2026-01-10T10:16:00+00:00", 1),
    ]
    assert "Read 20 lines" in out
    assert "Counted 8 events (total amount 8) into 6 row updates in 1 chunks." in out
    assert "Skipped 2 lines: status not counted." in out
    assert "Skipped 1 lines: method not counted." in out
    assert "Skipped 2 lines: static file." in out
    assert "Skipped 2 lines: no URL pattern matches." in out
    assert "Skipped 1 lines: the resolver left it out." in out
    assert "Could not parse 4 lines (first at 17, 18, 19, 20)." in out


def test_importing_the_same_log_again_adds_nothing_even_rotated_and_compressed(log_file, tmp_path):
    run(str(log_file))
    before = article_rows()
    out = run(str(log_file))
    assert "Skipped 20 lines already imported by an earlier run." in out
    assert "Counted 0 events" in out
    rotated = tmp_path / "access.log.2.gz"
    rotated.write_bytes(gzip.compress(LOG.encode()))
    out = run(str(rotated))
    assert "Skipped 20 lines already imported by an earlier run." in out
    assert article_rows() == before
    assert PlayerTrackableData.objects.get().quests == 1


def test_a_log_that_grew_is_imported_from_where_the_last_import_stopped(tmp_path):
    path = tmp_path / "access.log"
    lines = [line(ts=f"10/Jan/2026:10:{m:02d}:00 +0000") for m in range(10)]
    path.write_text("".join(lines[:4]))
    run(str(path), "--chunk-lines", "3")
    path.write_text("".join(lines))
    out = run(str(path), "--chunk-lines", "3")
    assert article_rows() == [(1, "2026-01-10T00:00:00+00:00", 10)]
    assert "Skipped 4 lines already imported by an earlier run." in out
    assert sorted(ImportedChunk.objects.values_list("start", "end")) == [(0, 3), (3, 4), (4, 6), (6, 9), (9, 10)]


def test_stdin_and_dry_run(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(LOG.encode()))))
    out = run("-", "--dry-run")
    assert "stdin:" in out
    assert "Would count 8 events (total amount 8) into 6 row updates in 1 chunks." in out
    assert ArticleTrackableData.objects.count() == 0
    assert ImportedChunk.objects.count() == 0


def test_status_and_method_options(log_file):
    summary = json.loads(run(str(log_file), "--status", "2xx,304", "--methods", "get,post", "--include-static", "--json"))
    assert summary["events"] == 10
    assert summary["skipped"] == {
        "no URL pattern matches": 4, "status not counted": 1, "the resolver left it out": 1,
    }
    assert summary["broken"] == 4


def test_spiders_are_left_out_with_is_spider(log_file, monkeypatch):
    fake = types.ModuleType("trackable.spiders")
    fake.is_spider = lambda agent: "bot" in agent.lower()
    monkeypatch.setitem(sys.modules, "trackable.spiders", fake)
    out = run(str(log_file), "--skip-spiders")
    assert "Skipped 1 lines: spider." in out
    assert VideoTrackableData.objects.get().plays == 1


def test_spider_filtering_on_by_setting(log_file, monkeypatch):
    fake = types.ModuleType("trackable.spiders")
    fake.is_spider = lambda agent: "bot" in agent.lower()
    monkeypatch.setitem(sys.modules, "trackable.spiders", fake)
    with override_settings(TRACKABLE_USER_AGENT_FILTERING=True):
        assert "Skipped 1 lines: spider." in run(str(log_file))
        ImportedChunk.objects.all().delete()
        assert "lines: spider." not in run(str(log_file), "--keep-spiders")


def test_spider_filtering_without_the_spiders_module_is_an_error(log_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "trackable.spiders", None)
    with pytest.raises(CommandError) as err:
        run(str(log_file), "--skip-spiders")
    assert str(err.value).startswith("Spider filtering needs trackable.spiders.is_spider, which cannot be imported here (")
    assert str(err.value).endswith("); run with --keep-spiders, or turn TRACKABLE_USER_AGENT_FILTERING off.")


def players_only(path, match):
    """A site's resolver: /players/<handle>/ counts quests of a Player instance; nothing else counts."""
    if match.url_name == "player":
        return Player(handle=match.kwargs["pk"]), "quests"
    return None


def broken_resolver(path, match):
    return "nonsense"


def wrong_field_resolver(path, match):
    return (Article, 1), "plays"


def test_a_custom_resolver(log_file):
    with override_settings(TRACKABLE_IMPORT_RESOLVER="tests.test_import_log.players_only"):
        out = run(str(log_file))
    assert ArticleTrackableData.objects.count() == 0
    assert list(PlayerTrackableData.objects.values_list("object_id", "quests")) == [("alice", 1)]
    assert "Skipped 8 lines: the resolver left it out." in out


@pytest.mark.parametrize(
    "resolver, message",
    [
        ("tests.test_import_log.nope",
         "TRACKABLE_IMPORT_RESOLVER is 'tests.test_import_log.nope', which cannot be imported: Module "
         '"tests.test_import_log" does not define a "nope" attribute/class.'),
        ("tests.test_import_log.broken_resolver",
         "Import of {log} stopped: The import resolver returned 'nonsense' for /articles/1/; it must return "
         "(object or (model, pk), field) or None."),
        ("tests.test_import_log.wrong_field_resolver",
         "Import of {log} stopped: The import resolver returned field 'plays' of Article for /articles/1/: 'plays' is "
         "not a counter field of ArticleTrackableData or ArticleHourlyData or ArticleTotals; the counter fields are: "
         "click_throughs, downloads, impressions, reads."),
    ],
)
def test_a_bad_resolver_is_a_command_error(log_file, resolver, message):
    with override_settings(TRACKABLE_IMPORT_RESOLVER=resolver), pytest.raises(CommandError) as err:
        run(str(log_file))
    assert str(err.value) == message.format(log=log_file)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--status", "ok"), "--status takes status codes or classes like 2xx,304; got 'ok'."),
        (("--methods", ","), "--methods is empty; give request methods like GET,HEAD."),
        (("--chunk-lines", "0"), "--chunk-lines must be a positive number of lines, not 0."),
    ],
)
def test_bad_options(log_file, args, message):
    with pytest.raises(CommandError) as err:
        run(str(log_file), *args)
    assert str(err.value) == message


def test_a_missing_file(tmp_path):
    with pytest.raises(CommandError) as err:
        run(str(tmp_path / "missing.log"))
    assert str(err.value) == f"Cannot read {tmp_path / 'missing.log'}: No such file or directory."


def test_chunks_commit_separately(log_file):
    out = run(str(log_file), "--chunk-lines", "7")
    assert "in 3 chunks" in out
    assert sorted(ImportedChunk.objects.values_list("start", "end")) == [(0, 7), (7, 14), (14, 20)]


# -- import_events ---------------------------------------------------------------------------------
CSV = """timestamp,object,field,amount,note
2026-01-10T10:00:00Z,testapp.player:alice,quests,2,first
2026-01-10T23:30:00,testapp.player:alice,quests,,naive is the buckets' zone
1768089600,testapp.player:bob,quests,5,unix seconds (2026-01-11)
2026-01-10T10:00:00Z,testapp.player:bob,quests,0,zero
2026-01-10T10:00:00Z,testapp.nothing:bob,quests,1,unknown model
2026-01-10T10:00:00Z,testapp.player:bob,plays,1,unknown field
not a time,testapp.player:bob,quests,1,
2026-01-10T10:00:00Z,testapp.player:bob
2026-01-10T10:00:00Z,testapp.player:bob,quests,x,

"""


def events(*args) -> str:
    out = StringIO()
    call_command("import_events", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def player_rows():
    return sorted((r.object_id, r.collected_during.isoformat(), r.quests) for r in PlayerTrackableData.objects.all())


def test_csv_events_become_exact_rows_and_reimport_adds_nothing(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    out = events(str(path))
    expected = [
        ("alice", "2026-01-10T00:00:00+00:00", 3),
        ("bob", "2026-01-11T00:00:00+00:00", 5),
    ]
    assert player_rows() == expected
    assert "Read 11 lines" in out
    assert "Counted 3 events (total amount 8) into 2 row updates in 1 chunks." in out
    assert "Skipped 1 lines: amount is zero." in out
    assert "Skipped 1 lines: empty line." in out
    assert "Could not parse 5 lines (first at 6, 7, 8, 9, 10)." in out
    out = events(str(path))
    assert "Skipped 10 lines already imported by an earlier run." in out
    assert player_rows() == expected


def test_csv_with_model_and_field_options(tmp_path):
    path = tmp_path / "quests.csv"
    path.write_text("timestamp,object\n2026-01-10T10:00:00+01:00,alice\n2026-01-10T10:00:00+01:00,alice\n")
    events(str(path), "--model", "testapp.Player", "--field", "quests")
    assert player_rows() == [("alice", "2026-01-10T00:00:00+00:00", 2)]


@pytest.mark.parametrize(
    "header, args, message",
    [
        ("when,object,field", (), "Import of {path} stopped: The CSV header has no 'timestamp' column; its first line "
         "must name the columns timestamp, object, field and optionally amount."),
        ("timestamp,object", (), "Import of {path} stopped: The CSV header has no 'field' column (or give --field); its "
         "first line must name the columns timestamp, object, field and optionally amount."),
        ("timestamp,object", ("--model", "testapp.Nope"), "Unknown model 'testapp.Nope': name it as app_label.ModelName."),
        ("timestamp,object", ("--model", "testapp.ArticleTotals"),
         "testapp.ArticleTotals is not registered with trackable; --model names a parent model."),
    ],
)
def test_csv_errors(tmp_path, header, args, message):
    path = tmp_path / "bad.csv"
    path.write_text(header + "\n")
    with pytest.raises(CommandError) as err:
        events(str(path), *args)
    assert str(err.value) == message.format(path=path)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Australia/Lord_Howe", "America/Santiago", "Asia/Kathmandu"])
@pytest.mark.parametrize("granularity", ["minute", "hour", "day", "week", "month"])
def test_cached_buckets_match_bucket_start_across_clock_changes(zone, granularity):
    from datetime import datetime, timedelta, timezone

    from trackable.buckets import bucket_start
    from trackable.importing import KeyMaker
    from trackable.models import TrackableTimeSeriesData

    meta = type("Meta", (), {"abstract": True, "app_label": "testapp"})
    model = type("Timed", (TrackableTimeSeriesData,), {"granularity": granularity, "__module__": __name__, "Meta": meta})
    with override_settings(TIME_ZONE=zone):
        keys = KeyMaker()
        for first in (datetime(2026, 3, 27, tzinfo=timezone.utc), datetime(2026, 4, 2, tzinfo=timezone.utc)):
            moment = first  # five days around spring (Europe) and autumn (southern) clock changes, in order
            for _ in range(24 * 6 * 5):
                assert keys.bucket(model, int(moment.timestamp() * 1000)) == bucket_start(moment, granularity, zone)
                moment += timedelta(minutes=10)


def test_a_concurrent_import_of_the_same_lines_writes_nothing_twice(log_file, monkeypatch):
    from trackable.importing import ChunkWriter

    run(str(log_file))
    before = article_rows()
    monkeypatch.setattr(ChunkWriter, "is_done", lambda self, lineno: False)  # as if the other import had not committed yet
    with pytest.raises(CommandError) as err:
        run(str(log_file))
    assert str(err.value) == (
        f"Import of {log_file} stopped: Another import of this source committed lines 1–20 first; nothing of this "
        "chunk was written. Run the import again to add the lines still missing."
    )
    assert article_rows() == before


def test_progress_is_drawn_on_request(log_file):
    err = StringIO()
    call_command("import_access_log", str(log_file), "--progress", stdout=StringIO(), stderr=err)
    assert err.getvalue().endswith("\rimport_access_log: 20 lines, 8 events, 4 broken, 0 already imported\n")
