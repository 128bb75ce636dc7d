"""Turn the lines of an Apache or Nginx access log into increments (manage.py import_access_log).

A line in the combined (or common) log format is kept when its method and status are wanted, its path
is not a static file and its user agent is not a spider; its path is resolved with Django's resolve()
and handed, with the ResolverMatch, to TRACKABLE_IMPORT_RESOLVER, which names the parent object and
the counter field, or None to leave the line out. The increment carries the line's own timestamp.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from django.apps import apps
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import HttpRequest, QueryDict
from django.urls import Resolver404, ResolverMatch, resolve
from django.utils.module_loading import import_string

from trackable import dimensions
from trackable.conf import settings
from trackable.exceptions import TrackableError
from trackable.importing import ChunkWriter, ImportStats, KeyMaker, PrimaryKeyProblem, Problem, Progress, timestamp_problem
from trackable.sources import BoundedCache

__all__ = ["LineFilter", "LogImporter", "default_resolver", "get_resolver", "parse_time", "parse_status_spec", "LINE"]

# host ident user [time] "request" status bytes ["referer" "user agent"]
LINE = re.compile(rb'(\S+) \S+ \S+ \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) \S+(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?')
MONTHS = {m.encode(): i for i, m in enumerate(calendar.month_abbr) if m}
STATIC_SUFFIXES = (
    ".css", ".js", ".mjs", ".map", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico",
    ".woff", ".woff2", ".ttf", ".otf", ".eot", ".txt", ".xml",
)
CACHE_LIMIT = 200_000  # entries of each cache; the path and user-agent caches are also bounded in bytes
CACHE_BYTES = 32 << 20  # bytes of the keys of each of those caches
NO_AGENT = b"-"  # what servers log when a request had no User-Agent header
TRUNCATED = Problem("user agent cut off (the line ends inside a quoted field)")

Resolver = Callable[[str, ResolverMatch], Any]


class ResolverError(TrackableError):
    """The import resolver returned something that cannot be counted."""


def parse_time(text: bytes) -> int:
    """Return the Unix time in milliseconds of a log timestamp like b'10/Oct/2000:13:55:36 -0700'."""
    if len(text) != 26 or text[2:3] != b"/" or text[6:7] != b"/" or text[20:21] != b" ":
        raise ValueError(f"{text!r} is not a log timestamp")
    day, month, year = int(text[0:2]), MONTHS[text[3:6]], int(text[7:11])
    hour, minute, second = int(text[12:14]), int(text[15:17]), int(text[18:20])
    sign = -1 if text[21:22] == b"-" else 1
    offset = sign * (int(text[22:24]) * 3600 + int(text[24:26]) * 60)
    return (calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset) * 1000


def parse_status_spec(spec: str) -> Callable[[int], bool]:
    """Return a test for status codes from '2xx', '200,304' or '2xx,304'."""
    classes, codes = set(), set()
    for item in filter(None, (s.strip().lower() for s in spec.split(","))):
        if re.fullmatch(r"[1-5]xx", item):
            classes.add(int(item[0]))
        elif re.fullmatch(r"[1-5]\d\d", item):
            codes.add(int(item))
        else:
            raise ValueError(f"--status takes status codes or classes like 2xx,304; got {item!r}.")
    if not classes and not codes:
        raise ValueError("--status is empty; give status codes or classes like 2xx,304.")
    return lambda status: status in codes or status // 100 in classes


def default_resolver(path: str, match: ResolverMatch) -> tuple[tuple[type[models.Model], Any], str] | None:
    """Count views whose URL kwargs carry `pk`: by TRACKABLE_IMPORT_URLS, or a view's model and trackable_field."""
    pk = match.kwargs.get("pk")
    if pk is None:
        return None
    target = settings.IMPORT_URLS.get(match.view_name)
    if target:
        label, _, field = target.rpartition(".")
        return (apps.get_model(label), pk), field
    view_class = getattr(match.func, "view_class", None)
    model = getattr(view_class, "model", None) or getattr(getattr(view_class, "queryset", None), "model", None)
    field = getattr(view_class, "trackable_field", None)
    if model is not None and field:
        return (model, pk), field
    return None


def get_resolver() -> Resolver:
    """Return the callable named by TRACKABLE_IMPORT_RESOLVER; raise ImproperlyConfigured if it cannot be imported."""
    path = settings.IMPORT_RESOLVER
    if callable(path):
        return path
    try:
        return import_string(path)
    except ImportError as err:
        raise ImproperlyConfigured(f"TRACKABLE_IMPORT_RESOLVER is {path!r}, which cannot be imported: {err}.") from err


def _site_host() -> str:
    """Return the site's host for telling its own referrers apart: the first plain name of ALLOWED_HOSTS."""
    for host in getattr(django_settings, "ALLOWED_HOSTS", None) or ():
        if isinstance(host, str) and host and host[0] not in ".*":
            return host
    return ""


def _static_prefixes() -> tuple[str, ...]:
    prefixes = []
    for name in ("STATIC_URL", "MEDIA_URL"):
        url = str(getattr(django_settings, name, "") or "")
        path = urlsplit(url).path
        if path.startswith("/") and path != "/":
            prefixes.append(path)
    return tuple(prefixes)


@dataclass
class LineFilter:
    """Which requests count: methods, statuses, static files, spiders."""

    methods: frozenset[bytes] = frozenset({b"GET"})
    status: Callable[[int], bool] = lambda status: 200 <= status < 300
    include_static: bool = False
    is_spider: Callable[[str], bool] | None = None

    @property
    def filters_spiders(self) -> bool:
        """Return whether spiders are left out."""
        return self.is_spider is not None


class LogImporter:
    """Stream log lines into a ChunkWriter, caching path resolutions and spider verdicts."""

    def __init__(
        self, writer: ChunkWriter, line_filter: LineFilter, resolver: Resolver | None = None, host: str | None = None
    ) -> None:
        self.writer = writer
        self.host = host if host is not None else _site_host()
        self.stats: ImportStats = writer.stats
        self.filter = line_filter
        self.resolver = resolver or get_resolver()
        self.keys = KeyMaker()
        self.static = _static_prefixes()
        self._paths = BoundedCache(CACHE_LIMIT, CACHE_BYTES)
        self._spiders = BoundedCache(CACHE_LIMIT, CACHE_BYTES)
        self._times: dict[bytes, int] = {}
        self.without_agent = 0  # lines in the common format (no user-agent field) seen by the spider filter

    def run(self, lines: Iterator[bytes], progress: Progress) -> None:
        """Import every line; count broken ones; commit chunk by chunk."""
        self.writer.consume(lines, self._line, progress)
        if self.without_agent:
            self.stats.warnings.append(
                f"{self.without_agent} lines have no user-agent field (a common-format log?). With spider filtering on, "
                "a missing user agent is a spider's (TRACKABLE_EMPTY_USER_AGENT_IS_SPIDER), so they were not counted "
                "as people: log in the combined format, or import such logs with --keep-spiders."
            )

    def _line(self, line: bytes) -> Any:
        """Return the increment of a line, the reason it is left out, or None if it is broken."""
        m = LINE.match(line)
        if m is None:
            return None
        status = int(m[4])
        if not self.filter.status(status):
            return "status not counted"
        parts = m[3].split(b" ")
        if len(parts) not in (2, 3):
            return None
        if parts[0] not in self.filter.methods:
            return "method not counted"
        stamp = m[2]
        minute = self._times.get(stamp[:17] + stamp[20:])  # one parse per minute: lines mostly share it
        if minute is None:
            try:
                minute = parse_time(stamp[:18] + b"00" + stamp[20:])
            except (ValueError, KeyError):
                return None
            if len(self._times) > CACHE_LIMIT:
                self._times.clear()
            self._times[stamp[:17] + stamp[20:]] = minute
        second = stamp[18:20]
        if not second.isdigit() or second > b"60":
            return None
        ts_ms = minute + int(second) * 1000
        target = self._paths.get(parts[1])
        if target is None:
            target = self._paths.put(parts[1], self._resolve(parts[1]))
        if isinstance(target, str):
            return target
        if self.filter.is_spider is not None:
            verdict = self._agent_verdict(line, m)
            if verdict is not None:
                return verdict
        problem = timestamp_problem(ts_ms)
        if problem:
            return problem
        increments = []
        computed: dict[Any, Any] = {}
        request = None
        for dm, ct_id, object_id, field, dimension_specs in target:
            key: tuple = (ct_id, object_id, self.keys.bucket(dm, ts_ms))
            if dimension_specs:
                request = request or self._request(parts[1], m)
                values = dimensions.values_for(request, dimension_specs, None, computed)
                key += tuple(values[name] for name, _, _ in dimension_specs)
            increments.append((dm, key, field, 1))
        return increments[0] if len(increments) == 1 else increments

    def _request(self, target: bytes, m: Any) -> HttpRequest:
        """Return a request rebuilt from a log line, for the dimension sources of breakdowns."""
        text = target.decode("utf-8", "replace")
        parts = urlsplit(text) if "://" in text else urlsplit("http://x" + text)
        request = HttpRequest()
        request.method = "GET"
        request.path = request.path_info = unquote(parts.path)
        request.GET = QueryDict(parts.query)
        meta = {"HTTP_HOST": self.host}
        for name, raw in (("HTTP_REFERER", m[5]), ("HTTP_USER_AGENT", m[6])):
            if raw and raw != NO_AGENT:
                meta[name] = raw.decode("utf-8", "replace")
        request.META = meta
        return request

    def _agent_verdict(self, line: bytes, m: Any) -> str | None:
        """Return "spider", why the user agent cannot be judged, or None for a person."""
        agent = m[6]
        if agent is None:
            if line[m.end() :].startswith(b' "'):  # a quoted field begins but never ends: the line was cut
                return TRUNCATED
            self.without_agent += 1
        return "spider" if self._spider(agent) else None

    def _spider(self, agent: bytes | None) -> bool:
        agent = b"" if agent is None or agent == NO_AGENT else agent  # "-": the request had no header
        verdict = self._spiders.get(agent)
        if verdict is None:
            is_spider = self.filter.is_spider
            assert is_spider is not None  # only asked when spiders are filtered
            verdict = self._spiders.put(agent, bool(is_spider(agent.decode("utf-8", "replace"))))
        return verdict

    def _resolve(self, target: bytes) -> Any:
        """Return (data model, content type id, object id, field) for a request target, or why not."""
        text = target.decode("utf-8", "replace")
        path = unquote(urlsplit(text).path if "://" in text else text.split("?", 1)[0])
        if not path.startswith("/"):
            return "not a path"
        if not self.filter.include_static and (path.startswith(self.static) or path.lower().endswith(STATIC_SUFFIXES)):
            return "static file"
        try:
            match = resolve(path)
        except Resolver404:
            return "no URL pattern matches"
        answer = self.resolver(path, match)
        if answer is None:
            return "the resolver left it out"
        return self._target(path, answer)

    def _target(self, path: str, answer: Any) -> Any:
        try:
            obj, field = answer
            model, pk = (type(obj), obj.pk) if isinstance(obj, models.Model) else obj
        except (TypeError, ValueError) as err:
            raise ResolverError(
                f"The import resolver returned {answer!r} for {path}; it must return (object or (model, pk), field) or None."
            ) from err
        try:
            return self.keys.targets(model, pk, field)
        except PrimaryKeyProblem as err:
            return Problem(str(err))
        except ValueError as err:
            if isinstance(err, TrackableError):  # UnknownField, AmbiguousField: the resolver is wrong
                raise ResolverError(
                    f"The import resolver returned field {field!r} of {model.__name__} for {path}: {err}"
                ) from err
            return "not a primary key"
        except TrackableError as err:  # NotRegistered
            raise ResolverError(f"The import resolver returned a {model.__name__} for {path}: {err}") from err
