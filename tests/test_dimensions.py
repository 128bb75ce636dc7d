"""The built-in breakdown sources: what each takes from a request, normalised and bounded."""
from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test.client import RequestFactory

from trackable import dimensions

pytestmark = pytest.mark.no_broker

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
    "Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def request(path="/", **meta):
    return RequestFactory().get(path, HTTP_HOST="www.shop.example", **meta)


@pytest.mark.parametrize(
    "path, expected",
    [("/", "/"), ("/about/", "/about"), ("/about", "/about"), ("/a/b/?x=1", "/a/b"), ("//", "/")],
)
def test_path_drops_the_query_string_and_the_trailing_slash(path, expected):
    assert dimensions.path(request(path)) == expected


@pytest.mark.parametrize(
    "referrer, host, full",
    [
        (None, None, None),
        ("https://www.Google.com/search?q=x", "google.com", "google.com/search"),
        ("https://news.ycombinator.com/item?id=1#c", "news.ycombinator.com", "news.ycombinator.com/item"),
        ("https://shop.example/cart/", "(internal)", "(internal)"),
        ("http://www.shop.example/", "(internal)", "(internal)"),
        ("https://example.org", "example.org", "example.org"),
        ("javascript:alert(1)", None, None),
        ("http://[::1", None, None),
        ("not a url", None, None),
    ],
)
def test_referrer_host_and_full_referrer(referrer, host, full):
    meta = {"HTTP_REFERER": referrer} if referrer else {}
    assert dimensions.referrer_host(request(**meta)) == host
    assert dimensions.referrer(request(**meta)) == full


@pytest.mark.parametrize(
    "referrer, terms",
    [
        ("https://www.google.com/search?q=Django+Tracking&hl=en", "django tracking"),
        ("https://www.google.co.uk/search?q=%C3%A9t%C3%A9", "été"),
        ("https://duckduckgo.com/?q=hello", "hello"),
        ("https://search.yahoo.com/search?p=yahoo+terms", "yahoo terms"),
        ("https://yandex.ru/search/?text=privet", "privet"),
        ("https://www.google.com/", None),  # Google passes no terms nowadays
        ("https://example.org/?q=not+a+search+engine", None),
    ],
)
def test_search_terms_come_from_search_engine_referrers_only(referrer, terms):
    assert dimensions.search_terms(request(HTTP_REFERER=referrer)) == terms


def test_utm_parameters_are_lowercased():
    req = request("/?utm_source=Newsletter&utm_medium=Email&utm_campaign=Black+Friday")
    assert [dimensions.SOURCES[name](req) for name in ("utm_source", "utm_medium", "utm_campaign")] == [
        "newsletter",
        "email",
        "black friday",
    ]
    assert dimensions.SOURCES["utm_source"](request("/")) is None


@pytest.mark.parametrize(
    "agent, browser, platform, device",
    [
        (CHROME_WINDOWS, "Chrome", "Windows", "desktop"),
        (ANDROID_PHONE, "Chrome Mobile", "Android", "mobile"),
        (IPAD, "Mobile Safari", "iOS", "tablet"),
        (GOOGLEBOT, "Googlebot", "Other", "bot"),
    ],
)
def test_browser_platform_and_device_come_from_ua_parser(agent, browser, platform, device):
    req = request(HTTP_USER_AGENT=agent)
    assert (dimensions.browser(req), dimensions.platform(req), dimensions.device(req)) == (browser, platform, device)


def test_user_agent_parses_are_cached():
    dimensions.agent.cache_clear()
    for _ in range(3):
        dimensions.browser(request(HTTP_USER_AGENT=CHROME_WINDOWS))
    info = dimensions.agent.cache_info()
    assert (info.hits, info.misses) == (2, 1)


def test_no_user_agent_gives_no_value():
    assert dimensions.browser(request()) is None


@pytest.mark.parametrize(
    "header, language",
    [("en-GB,en;q=0.8", "en"), ("FR", "fr"), ("*", None), ("", None), ("zh-Hant-TW", "zh"), ("x1-y", None)],
)
def test_language_is_the_primary_subtag_of_the_first_entry(header, language):
    assert dimensions.language(request(HTTP_ACCEPT_LANGUAGE=header)) == language


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ""),
        ("plain", "plain"),
        ("  two   spaces\t", "two spaces"),
        ("nul\x00inside", "nul inside"),
        ("x" * 50, "x" * 10),
        (42, "42"),
    ],
)
def test_values_are_normalised_and_bounded(value, expected):
    assert dimensions.normalise(value, 10) == expected


def test_an_unknown_source_is_refused_with_the_list():
    with pytest.raises(ImproperlyConfigured) as err:
        dimensions.source_of("referer")
    assert str(err.value) == (
        "'referer' is not a breakdown source; use one of browser, device, language, path, platform, referrer, "
        "referrer_host, search_terms, utm_campaign, utm_medium, utm_source or a callable(request) -> str | None."
    )
