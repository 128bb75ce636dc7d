"""Imports under hostile input: deterministic spider verdicts, values the database refuses, corrupt files, memory."""
from __future__ import annotations

import gzip
import json
import tracemalloc
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.testapp.models import ArticleTrackableData, PlayerTrackableData
from trackable import spiders
from trackable.importing import open_source
from trackable.models import ImportedChunk, Spider

IMPORT_SETTINGS = dict(
    ROOT_URLCONF="tests.importurls",
    STATIC_URL="/static/",
    TRACKABLE_IMPORT_URLS={"article": "testapp.Article.impressions", "video-play": "testapp.Video.plays"},
)
pytestmark = [pytest.mark.django_db, pytest.mark.no_broker, pytest.mark.usefixtures("import_settings")]
ZORGLUB = "Mozilla/5.0 (compatible; Zorglub/3.1)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


@pytest.fixture
def import_settings():
    with override_settings(**IMPORT_SETTINGS):
        spiders.reset()
        yield
        spiders.reset()


def line(path="/articles/1/", agent=BROWSER, ts="10/Jan/2026:10:15:00 +0000", combined=True):
    tail = f' "https://example.com/" "{agent}"' if combined else ""
    return f'203.0.113.9 - - [{ts}] "GET {path} HTTP/1.1" 200 512{tail}\n'


def run(command, path, *args):
    out = StringIO()
    call_command(command, str(path), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def impressions():
    return sorted(ArticleTrackableData.objects.values_list("object_id", "impressions"))


# -- spider verdicts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, 60])
def test_spider_rows_are_loaded_before_the_first_line_so_every_run_agrees(tmp_path, interval):
    Spider.objects.create(pattern="zorglub/")  # only a Spider row knows this spider, not the dataset
    path = tmp_path / "access.log"
    path.write_text("".join(line(agent=ZORGLUB if i % 2 else BROWSER) for i in range(400)))
    with override_settings(TRACKABLE_USER_AGENT_FILTERING=True, TRACKABLE_SPIDER_REFRESH_INTERVAL=interval):
        for _ in range(3):
            spiders.reset()  # a fresh process: no snapshot of the rows yet
            out = run("import_access_log", path)
            assert "Skipped 200 lines: spider." in out
            assert impressions() == [(1, 200)]
            ArticleTrackableData.objects.all().delete()
            ImportedChunk.objects.all().delete()


def test_a_dash_user_agent_is_a_missing_one(tmp_path):
    path = tmp_path / "access.log"
    path.write_text(line(agent="-") + line(agent=BROWSER) + line(agent="-"))
    with override_settings(TRACKABLE_USER_AGENT_FILTERING=True):
        assert "Skipped 2 lines: spider." in run("import_access_log", path)
        assert impressions() == [(1, 1)]
        ImportedChunk.objects.all().delete()
        with override_settings(TRACKABLE_EMPTY_USER_AGENT_IS_SPIDER=False):
            assert "spider" not in run("import_access_log", path)
    assert impressions() == [(1, 4)]


def test_a_common_format_log_with_filtering_on_is_warned_about(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("".join(line(combined=False) for _ in range(5)))
    with override_settings(TRACKABLE_USER_AGENT_FILTERING=True):
        out = run("import_access_log", path)
    assert "Skipped 5 lines: spider." in out
    assert (
        "Warning: 5 lines have no user-agent field (a common-format log?). With spider filtering on, a missing user "
        "agent is a spider's (TRACKABLE_EMPTY_USER_AGENT_IS_SPIDER), so they were not counted as people: log in the "
        "combined format, or import such logs with --keep-spiders."
    ) in out
    ImportedChunk.objects.all().delete()
    assert "Warning" not in run("import_access_log", path, "--keep-spiders")


def test_a_truncated_user_agent_is_reported_not_taken_for_a_missing_one(tmp_path):
    path = tmp_path / "access.log"
    cut = line(agent=BROWSER)[:-30] + "\n"
    path.write_text(line() + cut + line())
    with override_settings(TRACKABLE_USER_AGENT_FILTERING=True):
        out = run("import_access_log", path)
    assert "Skipped 1 lines: user agent cut off (the line ends inside a quoted field) (first at 2)." in out
    assert "Warning" not in out
    assert impressions() == [(1, 2)]


# -- values the database would refuse ------------------------------------------------------------------


def test_a_pk_beyond_bigint_skips_its_line_not_its_chunk(tmp_path):
    path = tmp_path / "access.log"
    path.write_text(
        line("/articles/1/") + line("/articles/2/") + line("/articles/99999999999999999999999/") + line("/articles/1/")
    )
    out = run("import_access_log", path)
    assert (
        "Skipped 1 lines: primary key cannot be stored: Article.id (BigAutoField) holds integers from "
        "-9223372036854775808 to 9223372036854775807 (first at 3)."
    ) in out
    assert impressions() == [(1, 2), (2, 1)]
    assert "Skipped 4 lines already imported by an earlier run." in run("import_access_log", path)  # not blocked


CSV_HEADER = "timestamp,object,field,amount\n"


def test_csv_values_the_database_refuses_are_skipped_lines_with_reasons(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(
        (
            "\ufeff" + CSV_HEADER
            + "2026-01-10T10:00:00Z,testapp.Player:alice,quests,2\n"
            + "2026-01-10T10:00:00Z,testapp.Player:alice,quests,99999999999\n"
            + "2026-01-10T10:00:00Z,testapp.Article:99999999999999999999999,impressions,1\n"
            + "2026-01-10T10:00:00Z,testapp.Player:a\x00b,quests,1\n"
            + "0001-01-01T00:00:00Z,testapp.Player:alice,quests,1\n"
            + "0001-01-01T00:00:00+14:00,testapp.Player:alice,quests,1\n"
            + "2026-01-10T11:00:00Z,testapp.Player:" + "x" * 41 + ",quests,1\n"
            + "2026-01-10T11:00:00Z,testapp.Player:bob,quests,3\n"
        ).encode("utf-8")
    )
    out = run("import_events", path)
    assert sorted(PlayerTrackableData.objects.values_list("object_id", "quests")) == [("alice", 2), ("bob", 3)]
    for expected in [
        "Skipped 1 lines: amount outside the range of the PositiveIntegerField counter quests (first at 3).",
        "Skipped 1 lines: primary key cannot be stored: Article.id (BigAutoField) holds integers from "
        "-9223372036854775808 to 9223372036854775807 (first at 4).",
        "Skipped 1 lines: a NUL character in the record (first at 5).",
        "Skipped 2 lines: timestamp outside the years 1900 to 9998 (first at 6, 7).",
        "Skipped 1 lines: primary key cannot be stored: PlayerTrackableData.object_id (CharField) holds at most 40 "
        "characters (first at 8).",
    ]:
        assert expected in out
    summary = json.loads(run("import_events", path, "--json", "--source-id", "x", "--dry-run"))
    assert summary["skipped_lines"]["a NUL character in the record"] == [5]


def test_a_corrupt_gzip_is_a_clear_command_error(tmp_path):
    data = gzip.compress((CSV_HEADER + "2026-01-10T10:00:00Z,testapp.Player:alice,quests,2\n" * 1000).encode())
    path = tmp_path / "events.csv.gz"
    path.write_bytes(data[:10] + b"\xff" * 16 + data[26:])
    with pytest.raises(CommandError) as caught:
        run("import_events", path)
    assert str(caught.value).startswith(f"Cannot read {path}: it is not a valid gzip file (")
    # Corrupt after the head: the lines before it are committed, the error names the fix.
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes(b ^ 0x55 for b in data[middle : middle + 64]) + data[middle + 64 :])
    with pytest.raises(CommandError) as caught:
        run("import_events", path)
    assert str(caught.value).startswith(f"Import of {path} stopped: ")


# -- memory --------------------------------------------------------------------------------------------


def test_an_overlong_line_is_skipped_in_bounded_memory(tmp_path):
    path = tmp_path / "access.log.gz"
    with gzip.open(path, "wb") as f:
        f.write(line().encode())
        f.write(b'203.0.113.9 - - [10/Jan/2026:10:15:00 +0000] "GET /articles/' + b"1" * (48 << 20) + b'/ HTTP/1.1" 200 5\n')
        f.write(line().encode())
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        _, lines, handle = open_source(str(path))
        sizes = [len(x) for x in lines]
        handle.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(sizes) == 3 and max(sizes) < 1000
    assert peak < 4 << 20  # the 48 MiB line is never held
    out = run("import_access_log", path)
    assert "Skipped 1 lines: line longer than 65536 bytes (first at 2)." in out
    assert impressions() == [(1, 2)]


def test_the_path_cache_is_bounded_in_bytes(tmp_path):
    from trackable.accesslog import LineFilter, LogImporter
    from trackable.importing import ChunkWriter, ImportStats, Progress

    path = tmp_path / "access.log"
    path.write_text("".join(line(f"/articles/{i}/?" + "q" * 30_000) for i in range(1, 301)))
    stats = ImportStats()
    importer = LogImporter(ChunkWriter(None, stats, dry_run=True), LineFilter())
    _, lines, handle = open_source(str(path))
    importer.run(lines, Progress(None, "test"))
    handle.close()
    assert stats.events == 300
    assert importer._paths.bytes <= 4096 * len(importer._paths) and len(importer._paths) == 0  # long keys not kept
