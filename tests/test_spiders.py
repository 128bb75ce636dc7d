"""Spider filtering: the matcher, the Spider rows and their refresh, the request path, views and the fold."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import override_settings
from django.test.client import RequestFactory

from tests.testapp.models import (
    Article,
    ArticleHourlyData,
    ArticleTrackableData,
    Player,
    PlayerTrackableData,
    PlayerVisitData,
)
from trackable import spiders
from trackable.checks import check_settings, check_spiders
from trackable.conf import settings
from trackable.exceptions import ImproperlyConfigured, TrackableDeprecationWarning
from trackable.messaging import process_messages, send_increment_message
from trackable.models import Spider

REPO = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).resolve().parent / "data" / "user-agents"
FIXTURE = REPO / "trackable" / "fixtures" / "trackable_spiders.json"
FIXTURE_PATTERNS = [entry["fields"]["pattern"] for entry in json.loads(FIXTURE.read_text())]

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
CUBOT = (
    "Mozilla/5.0 (Linux; Android 8.1.0; CUBOT_NOVA Build/O11019) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/71.0.3578.99 Mobile Safari/537.36"
)
# A made-up UA that no shipped pattern matches: used to watch a Spider row take effect.
ZORGLUB = "Mozilla/5.0 (X11; Linux x86_64) Zorglub/3.1 (KHTML, like Gecko)"
ENGINES = ["re2", "re"]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def full_matcher(engine: str | None = None, **kwargs) -> spiders.SpiderMatcher:
    return spiders.SpiderMatcher(spiders.dataset_patterns(), FIXTURE_PATTERNS, spiders.HUMAN_PATTERNS, engine=engine, **kwargs)


def wait_for_refresh_threads() -> None:
    for thread in threading.enumerate():
        if thread.name == "trackable-spiders":
            thread.join(10)


@pytest.fixture(autouse=True)
def fresh_snapshot():
    """Give every test this process's spider state from scratch, and leave no refresh thread behind."""
    spiders.reset()
    yield
    wait_for_refresh_threads()
    spiders.reset()


# --- The matcher --------------------------------------------------------------------------------


@pytest.mark.no_broker
def test_dataset_patterns_come_from_crawler_user_agents_minus_the_excluded():
    patterns = spiders.dataset_patterns()
    assert len(patterns) > 1000
    assert "Googlebot\\/" in patterns
    assert not set(spiders.DATASET_EXCLUDE) & set(patterns)
    with override_settings(TRACKABLE_SPIDER_DATASET=False):
        assert spiders.dataset_patterns() == []


@pytest.mark.no_broker
@pytest.mark.parametrize("engine", ENGINES)
def test_sample_is_classified_alike_by_both_engines(engine):
    matcher = full_matcher(engine)
    assert matcher.engine == engine
    assert matcher.rejected == []
    assert sum(map(matcher, lines(SAMPLE / "bots.txt"))) == 49
    flagged = [ua for ua in lines(SAMPLE / "browsers.txt") if matcher(ua)]
    assert flagged == ["qBittorrent/4.3.9 ProgramUpdater (www.qbittorrent.org)"]


@pytest.mark.no_broker
def test_dataset_alone_flags_fewer_bots_of_the_sample():
    matcher = spiders.SpiderMatcher(spiders.dataset_patterns())
    assert sum(map(matcher, lines(SAMPLE / "bots.txt"))) == 34
    assert sum(map(matcher, lines(SAMPLE / "browsers.txt"))) == 0


@pytest.mark.no_broker
@pytest.mark.parametrize("engine", ENGINES)
def test_dataset_patterns_are_case_sensitive_and_rows_are_not(engine):
    matcher = spiders.SpiderMatcher(["Googlebot\\/"], ["zorglub"], engine=engine)
    assert matcher("Googlebot/2.1") is True
    assert matcher("GOOGLEBOT/2.1") is False
    assert matcher(ZORGLUB) is True
    assert matcher(FIREFOX) is False


@pytest.mark.no_broker
@pytest.mark.parametrize("engine", ENGINES)
def test_human_exceptions_hide_their_text_only(engine):
    matcher = full_matcher(engine)
    assert matcher(CUBOT) is False
    assert matcher(CUBOT + " (compatible; Googlebot/2.1)") is True
    assert spiders.SpiderMatcher([], ["bot"], engine=engine)(CUBOT) is True  # without the exception it is a "bot"
    # The apps are people; the same vendors' link previewers and crawlers are not.
    assert [matcher(ua) for ua in ("WhatsApp/2.17.427 Android/6.0 Device/HTC-HTC_Desire_816", "WhatsApp/2.19.258 A")] == [
        False, True,
    ]
    assert [matcher(ua) for ua in ("Mozilla/5.0 (Linux; Android 10) Chrome/80.0 Safari/537.36 Viber/11.9.5.8", "Viber")] == [
        False, True,
    ]
    assert matcher("Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)") is True


@pytest.mark.no_broker
@pytest.mark.parametrize("engine", ENGINES)
def test_literal_patterns_folded_into_a_trie_keep_their_meaning(engine):
    matcher = spiders.SpiderMatcher(["Googlebot\\/", "Googlebo", "^curl", "a\\.b"], engine=engine)
    assert [matcher(ua) for ua in ("Googlebox", "Googleb", "curl/8.4", "xcurl/8.4", "a.b", "axb")] == [
        True, False, True, False, True, False,
    ]


@pytest.mark.no_broker
def test_only_the_first_max_length_characters_are_matched():
    matcher = spiders.SpiderMatcher([], ["crawler"], max_length=20)
    assert matcher("x" * 12 + "crawler") is True
    assert matcher("x" * 14 + "crawler") is False


@pytest.mark.no_broker
def test_verdicts_are_cached():
    matcher = full_matcher(cache_size=2)
    for ua in (GOOGLEBOT, FIREFOX, GOOGLEBOT, GOOGLEBOT):
        matcher(ua)
    info = matcher.cache_info()
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (2, 2, 2, 2)


@pytest.mark.no_broker
@pytest.mark.parametrize("engine", ENGINES)
def test_an_invalid_pattern_is_logged_and_ignored(engine, caplog):
    with caplog.at_level(logging.WARNING, logger="trackable"):
        matcher = spiders.SpiderMatcher([], ["(unclosed", "zorglub"], engine=engine)
    assert matcher.rejected == ["(unclosed"]
    assert matcher(ZORGLUB) is True
    [message] = [m for m in caplog.messages if m.startswith("Spider pattern '(unclosed'")]
    assert message.startswith(f"Spider pattern '(unclosed' is not usable with {engine} (")
    assert message.endswith("); ignored, the others still apply.")


@pytest.mark.no_broker
def test_check_pattern_names_the_fix():
    spiders.check_pattern("zorglub/\\d")
    with pytest.raises(ValueError, match=r"^'\(unclosed' is not a regular expression re2 accepts: .*\. Fix or escape it\.$"):
        spiders.check_pattern("(unclosed")


@pytest.mark.no_broker
def test_an_unknown_engine_is_refused():
    with pytest.raises(ImproperlyConfigured, match=r"^Unknown regex engine 'pcre': choose 're2' or 're'\.$"):
        spiders.SpiderMatcher(engine="pcre")


@pytest.mark.no_broker
def test_re2_is_the_default_engine_when_installed():
    assert spiders.SpiderMatcher().engine == "re2"


# --- Settings ----------------------------------------------------------------------------------


@pytest.mark.no_broker
@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_a_missing_or_blank_user_agent_follows_the_setting(user_agent):
    assert settings.EMPTY_USER_AGENT_IS_SPIDER is True
    assert spiders.is_spider(user_agent) is True
    with override_settings(TRACKABLE_EMPTY_USER_AGENT_IS_SPIDER=False):
        assert spiders.is_spider(user_agent) is False


@pytest.mark.no_broker
def test_the_misspelled_setting_still_works_with_a_warning():
    assert settings.USER_AGENT_FILTERING is False
    with override_settings(TRACKABLE_USER_AGENT_FILTERTING=True), pytest.warns(
        TrackableDeprecationWarning,
        match=r"^The setting TRACKABLE_USER_AGENT_FILTERTING is misspelled and deprecated; "
        r"rename it to TRACKABLE_USER_AGENT_FILTERING\.$",
    ):
        assert settings.USER_AGENT_FILTERING is True


@pytest.mark.no_broker
def test_human_user_agents_setting_replaces_the_exceptions():
    with override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0, TRACKABLE_HUMAN_USER_AGENTS=[]):
        assert spiders.is_spider(CUBOT + " " + GOOGLEBOT) is True
    with override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0, TRACKABLE_HUMAN_USER_AGENTS=["googlebot"]):
        assert spiders.is_spider("Googlebot/2.1") is False


# --- Spider rows: fixture, snapshot, refresh ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.no_broker
def test_the_fixture_loads_idempotently():
    Spider.objects.all().delete()
    call_command("loaddata", "trackable_spiders", verbosity=0)
    call_command("loaddata", "trackable_spiders", verbosity=0)
    assert Spider.objects.count() == len(FIXTURE_PATTERNS) == 50
    assert sorted(Spider.objects.values_list("pattern", flat=True)) == sorted(FIXTURE_PATTERNS)
    assert all(Spider.objects.values_list("description", flat=True))


@pytest.mark.django_db
@pytest.mark.no_broker
@override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_saving_and_deleting_a_row_takes_effect_after_commit(django_capture_on_commit_callbacks):
    assert spiders.refresh() == Spider.objects.filter(is_active=True).count()
    assert spiders.is_spider(ZORGLUB) is False
    with django_capture_on_commit_callbacks(execute=True):
        spider = Spider.objects.create(pattern="zorglub/", description="A test spider.")
    assert spiders.is_spider(ZORGLUB) is True
    with django_capture_on_commit_callbacks(execute=True):
        spider.is_active = False
        spider.save()
    assert spiders.is_spider(ZORGLUB) is False
    with django_capture_on_commit_callbacks(execute=True):
        spider.is_active = True
        spider.save()
    assert spiders.is_spider(ZORGLUB) is True
    with django_capture_on_commit_callbacks(execute=True):
        spider.delete()
    assert spiders.is_spider(ZORGLUB) is False


@pytest.mark.django_db
@pytest.mark.no_broker
@override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_deactivating_a_shipped_row_lets_its_user_agents_through():
    call_command("loaddata", "trackable_spiders", verbosity=0)
    spiders.refresh()
    assert spiders.is_spider("asafaweb.com") is True  # only the domain-name row matches it
    Spider.objects.filter(description__startswith="A domain name").update(is_active=False)  # no signal
    assert spiders.is_spider("asafaweb.com") is True  # until the next refresh
    spiders.refresh()
    assert spiders.is_spider("asafaweb.com") is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.no_broker
@override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0.2)
def test_another_process_change_arrives_within_the_refresh_interval():
    assert spiders.is_spider(ZORGLUB) is False  # cold start: starts the first background load
    wait_for_refresh_threads()
    Spider.objects.bulk_create([Spider(pattern="zorglub/")])  # no signal: as if another process saved it
    deadline = time.monotonic() + 5
    while not spiders.is_spider(ZORGLUB) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spiders.is_spider(ZORGLUB) is True
    Spider.objects.filter(pattern="zorglub/").delete()


# --- The request path, the views and the fold --------------------------------------------------


@pytest.mark.django_db
@override_settings(TRACKABLE_USER_AGENT_FILTERING=True)
def test_the_request_path_makes_no_query_even_on_a_cold_start(django_assert_num_queries):
    article = Article(pk=7)
    factory = RequestFactory()
    with django_assert_num_queries(0):
        assert send_increment_message(factory.get("/", HTTP_USER_AGENT=GOOGLEBOT), article, "impressions") is False
        assert send_increment_message(factory.get("/", HTTP_USER_AGENT=FIREFOX), article, "impressions") is True
        assert send_increment_message(factory.get("/"), article, "impressions") is False  # no User-Agent


def fold() -> None:
    process_messages(idle_timeout=0.3)


@pytest.mark.django_db
@override_settings(TRACKABLE_USER_AGENT_FILTERING=True, TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_views_drop_spider_hits_before_they_are_counted(client):
    assert client.get("/articles/1/", HTTP_USER_AGENT=GOOGLEBOT).content == b"1 sent=False"
    assert client.get("/articles/1/", HTTP_USER_AGENT=FIREFOX).content == b"1 sent=True"
    assert client.get("/articles/1/", HTTP_USER_AGENT=CUBOT).content == b"1 sent=True"
    assert client.get("/articles/2/", HTTP_USER_AGENT="curl/8.4.0").content == b"2 sent=False"
    assert client.get("/articles/2/").content == b"2 sent=False"
    fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(1, 2)]
    assert list(ArticleHourlyData.objects.values_list("object_id", "reads")) == [(1, 2)]


@pytest.mark.django_db
@override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_with_filtering_off_spiders_are_counted(client):
    assert client.get("/articles/3/", HTTP_USER_AGENT=GOOGLEBOT).content == b"3 sent=True"
    assert client.get("/articles/3/").content == b"3 sent=True"
    fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(3, 2)]


@pytest.mark.django_db
@override_settings(TRACKABLE_USER_AGENT_FILTERING=True, TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_spider_fields_count_spiders_apart(client):
    handle = f"p-{uuid.uuid4().hex[:6]}"
    Player.objects.create(handle=handle)
    for user_agent in (FIREFOX, FIREFOX, GOOGLEBOT, "python-requests/2.31.0", CUBOT):
        assert client.get(f"/players/{handle}/visit/", HTTP_USER_AGENT=user_agent).json() == {"sent": True}
    fold()
    assert list(PlayerVisitData.objects.values_list("object_id", "visits", "spider_visits")) == [(handle, 3, 2)]
    # PlayerTrackableData has no spider_fields: the spiders' quests were dropped.
    assert list(PlayerTrackableData.objects.values_list("object_id", "quests")) == [(handle, 3)]


@pytest.mark.django_db
@override_settings(TRACKABLE_USER_AGENT_FILTERING=True, TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_a_spider_row_added_in_the_admin_filters_the_next_request(admin_client, client, django_capture_on_commit_callbacks):
    assert client.get("/articles/5/", HTTP_USER_AGENT=ZORGLUB).content == b"5 sent=True"
    response = admin_client.post("/admin/trackable/spider/add/", {"pattern": "(zorglub", "description": "", "is_active": "on"})
    assert response.status_code == 200
    assert "&#x27;(zorglub&#x27; is not a regular expression re2 accepts" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/trackable/spider/add/", {"pattern": "zorglub/", "description": "Test.", "is_active": "on"}
        )
    assert response.status_code == 302
    assert client.get("/articles/5/", HTTP_USER_AGENT=ZORGLUB).content == b"5 sent=False"
    fold()
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(5, 1)]


@pytest.mark.django_db
@pytest.mark.no_broker
@pytest.mark.parametrize(
    "pattern, construct",
    [("(?i)zorglub", "(?i)"), ("(?x)zorg lub", "(?x)"), ("(?P<name>zorglub)", "(?P<"), ("(?<name>zorglub)", "(?<"),
     ("(zorg)\\1", "\\1")],
)
def test_patterns_that_would_break_the_joined_matcher_are_refused_at_save(admin_client, pattern, construct):
    response = admin_client.post("/admin/trackable/spider/add/", {"pattern": pattern, "description": "", "is_active": "on"})
    assert response.status_code == 200
    assert "would break the matcher all patterns are joined into" in response.content.decode()
    assert not Spider.objects.filter(pattern=pattern).exists()
    with pytest.raises(ValidationError) as caught:
        Spider(pattern=pattern).full_clean()
    assert caught.value.message_dict["pattern"] == [
        f"{pattern!r} holds {construct!r}, which would break the matcher all patterns are joined into: use plain (...) "
        "or (?:...) groups, no backreferences, and scoped flags such as (?i:...) (Spider rows are already matched "
        "case-insensitively)."
    ]


@pytest.mark.django_db
@pytest.mark.no_broker
def test_a_catastrophic_pattern_cannot_stall_a_request():
    Spider(pattern="(a+)+$").full_clean()  # RE2 runs it in linear time
    Spider.objects.create(pattern="(a+)+$")
    spiders.refresh()
    started = time.perf_counter()
    assert spiders.is_spider("a" * 40 + "!") is False
    assert spiders.is_spider("a" * 4000) is True
    assert time.perf_counter() - started < 0.5


@pytest.mark.no_broker
@pytest.mark.parametrize("engine", ENGINES)
def test_rows_that_break_the_joined_expression_are_isolated(engine, caplog):
    rows = ["(?i)zorglub", "(?P<n>foo)", "(?P<n>bar)", "(?x)a b", "(unclosed", "bazbot"]
    with caplog.at_level(logging.WARNING, logger="trackable"):
        matcher = spiders.SpiderMatcher([], rows, engine=engine)
    assert matcher("Mozilla/5.0 BazBot/1.0") is True  # the good row still applies
    assert matcher("Mozilla/5.0 foo") is False
    assert sorted(matcher.rejected) == sorted(["(?i)zorglub", "(?P<n>foo)", "(?P<n>bar)", "(?x)a b", "(unclosed"])


@pytest.mark.django_db
@pytest.mark.no_broker
@override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_bad_rows_written_past_validation_never_disable_the_others(django_capture_on_commit_callbacks):
    spiders.refresh()
    Spider.objects.bulk_create([Spider(pattern="(?P<n>zorglub)"), Spider(pattern="(?P<n>x)")])  # no clean()
    with django_capture_on_commit_callbacks(execute=True):
        Spider.objects.create(pattern="bazbot")
    assert spiders.is_spider("BazBot/1.0") is True
    assert spiders.is_spider("Googlebot/2.1") is True
    assert set(spiders.get_matcher().rejected) >= {"(?P<n>zorglub)", "(?P<n>x)"}


@pytest.mark.django_db
@pytest.mark.no_broker
def test_a_failed_reload_after_an_admin_save_is_logged_not_raised(
    admin_client, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    spiders.refresh()
    before = spiders.get_matcher()

    def broken(rows, engine=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(spiders, "build_matcher", broken)
    with caplog.at_level(logging.ERROR, logger="trackable"), django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/trackable/spider/add/", {"pattern": "zorglub/", "description": "", "is_active": "on"}
        )
    assert response.status_code == 302
    assert "Could not reload the trackable Spider patterns after a change; keeping the previous ones." in caplog.messages
    assert spiders.get_matcher() is before


# --- Checks ------------------------------------------------------------------------------------


@pytest.mark.no_broker
def test_check_reports_bad_spider_fields(monkeypatch):
    assert check_spiders() == []
    monkeypatch.setattr(PlayerVisitData, "spider_fields", {"visits": "bots"})
    [error] = check_spiders()
    assert error.id == "trackable.E006"
    assert error.msg == (
        "testapp.PlayerVisitData.spider_fields maps 'visits' → 'bots'; it must map counter fields to other counter fields."
    )


@pytest.mark.no_broker
@override_settings(TRACKABLE_USER_AGENT_FILTERING=True)
def test_check_warns_when_the_dataset_is_missing(monkeypatch):
    monkeypatch.setattr(spiders, "_dataset", lambda: ())
    [warning] = check_spiders()
    assert warning.id == "trackable.W002"
    assert warning.msg == "Spider filtering is on but the crawler-user-agents dataset is not installed; only Spider rows apply."


@pytest.mark.no_broker
@override_settings(TRACKABLE_HUMAN_USER_AGENTS=["(cubot"], TRACKABLE_SPIDER_REFRESH_INTERVAL=-1)
def test_check_reports_bad_patterns_and_interval():
    assert [(e.id, e.msg) for e in check_settings()] == [
        ("trackable.E004", "TRACKABLE_SPIDER_REFRESH_INTERVAL is -1; it must be a number of seconds (0: never)."),
    ]
    assert [(e.id, e.msg) for e in check_spiders()] == [
        (
            "trackable.E007",
            "TRACKABLE_HUMAN_USER_AGENTS: '(cubot' is not a regular expression re2 accepts: missing ): (cubot. "
            "Fix or escape it.",
        ),
    ]


# --- Accuracy on the labelled corpus -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.no_broker
@override_settings(TRACKABLE_SPIDER_REFRESH_INTERVAL=0)
def test_dev_corpus_thresholds():
    """Recall and false positives on the shipped sample of the labelled corpus (tests/data/user-agents/)."""
    call_command("loaddata", "trackable_spiders", verbosity=0)
    spiders.refresh()
    bots, browsers = lines(SAMPLE / "dev-bots.txt"), lines(SAMPLE / "dev-browsers.txt")
    assert (len(bots), len(browsers)) == (750, 1000)
    recall = sum(map(spiders.is_spider, bots)) / len(bots)
    false_positives = sum(map(spiders.is_spider, browsers)) / len(browsers)
    assert recall >= 0.97
    assert false_positives <= 0.005
