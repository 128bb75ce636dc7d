"""Breakdown values taken from the request, on the request path: in memory, no database, no network.

A Dimension field names its source: one of :data:`SOURCES` (below) or any ``callable(request) -> str | None``.
Every value is normalised by :func:`normalise` (control characters dropped, whitespace collapsed, cut
to the column's length); None, and every value of a send without a request, is the empty value.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from trackable.conf import settings

__all__ = ["SOURCES", "INTERNAL", "Source", "source_of", "normalise", "values_for", "agent", "search_engine_param"]

Source = Callable[[HttpRequest], Any]
INTERNAL = "(internal)"  # the referrer of a visit that came from a page of the same site
UA_CACHE_SIZE = 4096  # user agents whose parse is kept per process
MAX_SOURCE_CHARS = 2000  # characters of a header looked at (a referrer, a query string value)
REFERRER_CACHE_SIZE = 2048  # parsed referrers kept per process (those of at most REFERRER_CACHE_CHARS characters)
REFERRER_CACHE_CHARS = 500

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_LANGUAGE = re.compile(r"[a-z]{1,8}")

# Search engines whose referrer may carry the terms searched: a label of the host → the query parameter.
SEARCH_ENGINES = {
    "google": "q",
    "bing": "q",
    "duckduckgo": "q",
    "ecosia": "q",
    "qwant": "q",
    "ask": "q",
    "aol": "q",
    "yahoo": "p",
    "yandex": "text",
    "baidu": "wd",
    "naver": "query",
    "startpage": "query",
}


def normalise(value: Any, max_length: int) -> str:
    """Return `value` as a dimension value: a string without control characters, whitespace collapsed, cut to `max_length`."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "  " not in text and text == text.strip():
        return text[:max_length]  # the common case: nothing to clean
    return " ".join(_CONTROL.sub(" ", text).split())[:max_length]


def _own_host(request: HttpRequest) -> str:
    meta = request.META
    host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME") or ""
    return _bare_host(host.rsplit(":", 1)[0] if not host.endswith("]") else host)


def _bare_host(host: str) -> str:
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _referrer(request: HttpRequest) -> tuple[str, str, str] | None:
    """Return (bare host, path, query) of the Referer header, or None when absent or unparsable (parsed once per request)."""
    raw = request.META.get("HTTP_REFERER")
    if not raw:
        return None
    cached = getattr(request, "_trackable_referrer", None)
    if cached is not None and cached[0] is raw:
        return cached[1]
    found = _parse_referrer_cached(raw) if len(raw) <= REFERRER_CACHE_CHARS else _parse_referrer(raw)
    request._trackable_referrer = (raw, found)  # type: ignore[attr-defined]  # three sources read it
    return found


_SCHEMES = ("http", "https", "android-app")
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]+")


@lru_cache(maxsize=REFERRER_CACHE_SIZE)
def _parse_referrer_cached(raw: str) -> tuple[str, str, str] | None:
    """Return _parse_referrer(raw), kept per process: a site's referrers repeat (search pages, links)."""
    return _parse_referrer(raw)


def _parse_referrer(raw: str) -> tuple[str, str, str] | None:
    raw = raw[:MAX_SOURCE_CHARS]
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        return None
    # The common URL (a plain host, maybe a port) is cut by hand: urlsplit() costs several times more.
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark, 0, end)
        if at >= 0:
            end = at
    host, _, port = rest[:end].partition(":")
    if _PLAIN_HOST.fullmatch(host) and (not port or port.isdigit()):
        tail = rest[end:].partition("#")[0]
        path, _, query = tail.partition("?")
        return (_bare_host(host), path, query) if host else None
    try:  # userinfo, IPv6 literals, odd characters: the standard parser decides
        parts = urlsplit(raw)
        found = parts.hostname
    except ValueError:
        return None
    return (_bare_host(found), parts.path, parts.query) if found else None


def path(request: HttpRequest) -> str:
    """Return the request's path without its query string; "/about/" and "/about" are one page."""
    value = request.path[:MAX_SOURCE_CHARS]
    return value.rstrip("/") or "/"


def referrer_host(request: HttpRequest) -> str | None:
    """Return the referring site's host ("www." dropped), "(internal)" for the site's own pages, None when direct."""
    found = _referrer(request)
    if found is None:
        return None
    return INTERNAL if found[0] == _own_host(request) else found[0]


def referrer(request: HttpRequest) -> str | None:
    """Return the referring page as host and path (no query string: it may hold personal data), or "(internal)"."""
    found = _referrer(request)
    if found is None:
        return None
    host, ref_path, _ = found
    return INTERNAL if host == _own_host(request) else host + (ref_path.rstrip("/") or "")


def search_engine_param(host: str) -> str | None:
    """Return the query parameter holding the search terms for a search engine's host, or None."""
    labels = host.split(".")
    for label in labels[:-1]:  # the engine's name is a label before the top-level domain
        found = SEARCH_ENGINES.get(label)
        if found is not None:
            return found
    return None


def search_terms(request: HttpRequest) -> str | None:
    """Return the terms searched, lowercased, when the referrer is a search engine that passes them."""
    found = _referrer(request)
    if found is None:
        return None
    param = search_engine_param(found[0])
    if param is None or not found[2]:
        return None
    prefix = param + "="
    for pair in found[2].split("&", 50)[:50]:
        if pair.startswith(prefix):
            return " ".join(unquote_plus(pair[len(prefix) :]).lower().split()) or None
    return None


def _utm(name: str) -> Source:
    def source(request: HttpRequest) -> str | None:
        query = request.META.get("QUERY_STRING", "")
        if name not in query and "%" not in query:
            return None  # most requests: no need to parse the query string
        value = request.GET.get(name)
        return value[:MAX_SOURCE_CHARS].strip().lower() or None if value else None

    source.__name__ = name
    source.__doc__ = f"Return the {name} parameter of the request's URL, lowercased."
    return source


@lru_cache(maxsize=UA_CACHE_SIZE)
def agent(user_agent: str) -> tuple[str, str, str]:
    """Return (browser family, OS family, device type) of a User-Agent, parsed by ua-parser (cached per process)."""
    try:
        import ua_parser
    except ImportError as err:  # an install requirement: only a broken environment lacks it
        raise ImproperlyConfigured("Breakdowns by browser, platform or device need ua-parser; pip install ua-parser.") from err
    try:
        result = ua_parser.parse(user_agent).with_defaults()
    except UnicodeEncodeError:  # a lone surrogate (no HTTP server hands one over; a test client may)
        result = ua_parser.parse(user_agent.encode("utf-8", "replace").decode("utf-8")).with_defaults()
    return result.user_agent.family, result.os.family, _device_type(result, user_agent.lower())


_DESKTOPS = frozenset({"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD", "Debian", "OpenBSD"})


def _device_type(result: Any, lowered: str) -> str:
    if result.device.family == "Spider":
        return "bot"
    os_family = result.os.family
    if "ipad" in lowered or "tablet" in lowered or (os_family == "Android" and "mobile" not in lowered):
        return "tablet"
    if "mobi" in lowered or os_family in ("iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"):
        return "mobile"
    if os_family in _DESKTOPS:
        return "desktop"
    return "other"


def _agent_part(index: int, name: str) -> Source:
    def source(request: HttpRequest) -> str | None:
        user_agent = request.META.get("HTTP_USER_AGENT")
        if not user_agent:
            return None
        return agent(user_agent[: settings.USER_AGENT_MAX_LENGTH])[index]

    source.__name__ = name
    return source


browser = _agent_part(0, "browser")
browser.__doc__ = "Return the browser family (e.g. \"Firefox\", \"Mobile Safari\"; \"Other\" when unknown)."
platform = _agent_part(1, "platform")
platform.__doc__ = "Return the operating system family (e.g. \"Windows\", \"iOS\", \"Android\")."
device = _agent_part(2, "device")
device.__doc__ = "Return the device type: \"desktop\", \"mobile\", \"tablet\", \"bot\" or \"other\"."


def language(request: HttpRequest) -> str | None:
    """Return the primary language of the first Accept-Language entry, e.g. "en" for "en-GB,en;q=0.8"."""
    header = request.META.get("HTTP_ACCEPT_LANGUAGE")
    if not header:
        return None
    first = header[:100].split(",", 1)[0].split(";", 1)[0].split("-", 1)[0].strip().lower()
    return first if _LANGUAGE.fullmatch(first) else None


SOURCES: dict[str, Source] = {
    "path": path,
    "referrer_host": referrer_host,
    "referrer": referrer,
    "search_terms": search_terms,
    "utm_source": _utm("utm_source"),
    "utm_medium": _utm("utm_medium"),
    "utm_campaign": _utm("utm_campaign"),
    "browser": browser,
    "platform": platform,
    "device": device,
    "language": language,
}


def source_of(spec: Any) -> Source:
    """Return the callable of a Dimension's source: a name in SOURCES or a callable; raise ImproperlyConfigured."""
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec in SOURCES:
        return SOURCES[spec]
    raise ImproperlyConfigured(
        f"{spec!r} is not a breakdown source; use one of {', '.join(sorted(SOURCES))} or a callable(request) -> str | None."
    )


def values_for(
    request: HttpRequest | None,
    dimensions: tuple[tuple[str, Source, int], ...],
    explicit: Mapping[str, Any] | None,
    computed: dict[Source, Any],
) -> dict[str, str]:
    """Return {dimension name: value} of one breakdown: the explicit values, else the sources' for `request`.

    `dimensions` holds (name, source, max_length); `computed` caches the sources' results for one send.
    """
    out = {}
    for name, source, max_length in dimensions:
        if explicit is not None and name in explicit:
            value = explicit[name]
        elif request is None:
            value = None
        elif source in computed:
            value = computed[source]
        else:
            value = computed[source] = source(request)
        out[name] = normalise(value, max_length)
    return out
