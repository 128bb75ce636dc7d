"""Tell spiders from people by their User-Agent: one compiled matcher, cached, refreshed out of band.

Spider patterns come from two places, joined into one regular expression (RE2, from the required
`google-re2`: linear time whatever the pattern):

* the crawler-user-agents dataset (PyPI `crawler-user-agents`), searched case-sensitively as that
  dataset intends, minus the few of its patterns listed in TRACKABLE_SPIDER_DATASET_EXCLUDE;
* the active `Spider` rows (admin-editable; the shipped ones come from fixtures/trackable_spiders.json),
  searched case-insensitively.

Human exceptions (TRACKABLE_HUMAN_USER_AGENTS), a small second expression searched only after a hit,
are cut out of the header before the spider patterns count again, so "CUBOT" phones are not "bot"s
(a spider token elsewhere in the header still counts).

The request path never queries the database: the Spider rows are a per-process snapshot, reloaded by
a background thread at most every TRACKABLE_SPIDER_REFRESH_INTERVAL seconds, and at once (after commit)
in the process that saves or deletes a row.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import connections, router, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from trackable.conf import settings
from trackable.regexjoin import join_patterns as _join

__all__ = [
    "SpiderMatcher",
    "HUMAN_PATTERNS",
    "DATASET_EXCLUDE",
    "is_spider",
    "check_pattern",
    "unsafe_construct",
    "divert",
    "frozen_test",
    "dataset_patterns",
    "build_matcher",
    "get_matcher",
    "refresh",
    "reset",
]

logger = logging.getLogger("trackable")

# Real browsers and apps whose user agents contain spider-like words (searched case-insensitively).
HUMAN_PATTERNS: tuple[str, ...] = (
    r"cubot",  # CUBOT phones: "CUBOT_NOVA Build/..."
    r"orbot",  # the Orbot Tor proxy app
    r"\bm bot \d",  # "M bot 54" phones
    r"spider \d[\w .]* build/",  # "Spider 8" tablets: an Android device model precedes " Build/"
    r"sogou(?:mobilebrowser|search|mse)",  # Sogou's browser and search app (its crawler says "spider")
    r"viber/",  # Viber's in-app browser
    r"whatsapp/[\d.]+ (?:android|ios)",  # WhatsApp's app client (its link previewer sends "WhatsApp/x A")
)

# Dataset patterns that match version or build numbers of ordinary phones, not a product name.
DATASET_EXCLUDE: tuple[str, ...] = (
    r"AP3A\.240617\.008",  # an Android 15 build id shared by millions of phones
    r"008\/",  # any version number ending in 008, e.g. "Opera Mini/4.4.39008/"
)


class _Re2Set:
    """A yes/no RE2 search through RE2::Set: no match positions to compute, about twice as fast as search()."""

    def __init__(self, pattern: str, options: Any) -> None:
        import re2

        self._set = re2.Set.SearchSet(options)
        self._set.Add(pattern)
        self._set.Compile()
        self.search = self._set.Match  # a list of matching indices, or None
        self.pattern = pattern


# What the combined matcher cannot take from one row: a named group (two rows naming the same group
# break it), a backreference, or a flag group such as (?i) or (?x) that is not scoped as (?i:...).
_UNSAFE = re.compile(r"\(\?P?<(?![=!])|\(\?P=|\(\?[aiLmsux-]+\)|\\[1-9]")


def unsafe_construct(pattern: str) -> str | None:
    """Return the construct of `pattern` that would break the combined matcher, or None."""
    found = _UNSAFE.search(pattern)
    return found.group(0) if found else None


def _compilers(engine: str | None) -> tuple[str, Any, Any]:
    """Return the engine's name, its compile function, and a compile function for yes/no searches.

    RE2 (google-re2, a required dependency) is the default: linear time, so no pattern can make a
    request slow. Python's `re` is used only when asked for by name (benchmarks).
    """
    if engine in (None, "re2"):
        try:
            import re2
        except ImportError:
            raise ImproperlyConfigured(
                "google-re2 is not installed, and spider patterns need it (it is a dependency of django-trackable): "
                "pip install google-re2."
            ) from None
        else:
            options = re2.Options()
            options.max_mem = 256 << 20  # room for the DFA of ~1,600 alternatives (the 8 MiB default is too small)
            options.log_errors = False
            options.never_capture = True  # yes/no searches: spare RE2 the submatch engine
            return "re2", lambda pattern: re2.compile(pattern, options=options), lambda p: _Re2Set(p, options)
    elif engine != "re":
        raise ImproperlyConfigured(f"Unknown regex engine {engine!r}: choose 're2' or 're'.")
    return "re", re.compile, re.compile


class SpiderMatcher:
    """Decide whether user agents belong to spiders, with one compiled expression and an LRU cache.

    `sensitive` patterns are searched case-sensitively, `insensitive` and `human` ones case-insensitively.
    """

    def __init__(
        self,
        sensitive: Iterable[str] = (),
        insensitive: Iterable[str] = (),
        human: Iterable[str] = (),
        *,
        max_length: int = 512,
        cache_size: int = 4096,
        engine: str | None = None,
    ) -> None:
        self.engine, compile_, compile_any = _compilers(engine)
        self.max_length = max_length
        self.rejected: list[str] = []
        self._seen: set[str] = set()
        human_part = _join(self._valid(human, compile_))
        sensitive_part = _join(self._valid(sensitive, compile_))
        self._spiders = self._compile_rows(sensitive_part, self._valid(insensitive, compile_), compile_any)
        self.patterns = len(self._seen)
        # Human exceptions are cut out of a header before its spider tokens count; searched only after a hit.
        self._humans = compile_(f"(?i:{human_part})") if human_part else None
        self._cached = lru_cache(maxsize=cache_size)(self._match)

    def _valid(self, patterns: Iterable[str], compile_: Any) -> list[str]:
        """Return the new patterns that compile in a group; log and remember the others as rejected."""
        valid = []
        for pattern in patterns:
            if not pattern or pattern in self._seen:
                continue
            construct = unsafe_construct(pattern)
            try:
                if construct:
                    raise ValueError(f"{construct!r} would break the combined matcher")
                compile_(pattern)
                compile_(f"(?:{pattern})")  # as it is joined: a flag group must not be global
            except Exception as err:  # re.error and re2.error share no base class but Exception
                self._reject(pattern, err)
                continue
            self._seen.add(pattern)
            valid.append(pattern)
        return valid

    def _reject(self, pattern: str, err: Any) -> None:
        self.rejected.append(pattern)
        logger.warning(
            "Spider pattern %r is not usable with %s (%s); ignored, the others still apply.", pattern, self.engine, err
        )

    def _compile_rows(self, sensitive: str, rows: list[str], compile_any: Any) -> Any:
        """Compile the spider expression; if the rows together break it, drop the rows that do, one by one."""
        def joined(kept: list[str]) -> str:
            insensitive = _join(kept)
            return "|".join(filter(None, (sensitive, insensitive and f"(?i:{insensitive})")))

        try:
            return compile_any(joined(rows)) if joined(rows) else None
        except Exception:  # noqa: BLE001 - isolate below
            pass
        kept: list[str] = []
        for row in rows:
            try:
                compile_any(joined([*kept, row]))
            except Exception as err:  # noqa: BLE001
                self._reject(row, err)
                self._seen.discard(row)
                continue
            kept.append(row)
        return compile_any(joined(kept)) if joined(kept) else None

    def __call__(self, user_agent: str) -> bool:
        """Return whether `user_agent` (cut to max_length characters) matches a spider pattern."""
        return self._cached(user_agent[: self.max_length])

    def _match(self, user_agent: str) -> bool:
        spiders, humans = self._spiders, self._humans
        if spiders is None or spiders.search(user_agent) is None:
            return False
        if humans is None or humans.search(user_agent) is None:
            return True
        return spiders.search(humans.sub(" ", user_agent)) is not None

    def cache_info(self) -> Any:
        """Return the LRU cache statistics (hits, misses, maxsize, currsize)."""
        return self._cached.cache_info()


def check_pattern(pattern: str) -> None:
    """Raise ValueError, with the reason, if `pattern` is not a regular expression the matcher accepts.

    It must compile with RE2 (so it runs in linear time and has no backreference) and hold no named
    group, backreference or unscoped flag group, which would break the one expression all rows join.
    """
    construct = unsafe_construct(pattern)
    if construct:
        raise ValueError(
            f"{pattern!r} holds {construct!r}, which would break the matcher all patterns are joined into: use "
            "plain (...) or (?:...) groups, no backreferences, and scoped flags such as (?i:...) (Spider rows are "
            "already matched case-insensitively)."
        )
    engine, compile_, _ = _compilers(None)
    try:
        compile_(pattern)
        compile_(f"(?:{pattern})")  # as the matcher joins it
    except Exception as err:  # re.error and re2.error share no base class but Exception
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):  # re2 reports in bytes
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"{pattern!r} is not a regular expression {engine} accepts: {reason}. Fix or escape it.") from err


@lru_cache(maxsize=1)
def _dataset() -> tuple[str, ...]:
    try:
        import crawleruseragents
    except ImportError:
        return ()
    return tuple(entry["pattern"] for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA)


def dataset_patterns() -> list[str]:
    """Return the crawler-user-agents patterns in use (empty when the package is missing or disabled)."""
    if not settings.SPIDER_DATASET:
        return []
    exclude = set(DATASET_EXCLUDE if settings.SPIDER_DATASET_EXCLUDE is None else settings.SPIDER_DATASET_EXCLUDE)
    return [p for p in _dataset() if p not in exclude]


def build_matcher(rows: Iterable[str], engine: str | None = None) -> SpiderMatcher:
    """Return a matcher for the dataset, the given Spider patterns and the human exceptions of the settings."""
    human = HUMAN_PATTERNS if settings.HUMAN_USER_AGENTS is None else settings.HUMAN_USER_AGENTS
    return SpiderMatcher(
        dataset_patterns(),
        rows,
        human,
        max_length=settings.USER_AGENT_MAX_LENGTH,
        cache_size=settings.SPIDER_CACHE_SIZE,
        engine=engine,
    )


class _Snapshot:
    """This process's matcher and the Spider rows it was built from."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.matcher: SpiderMatcher | None = None
        self.rows: tuple[str, ...] | None = None  # None: not loaded from the database yet
        self.refresh_due = 0.0  # time.monotonic() after which a background reload starts
        self.refreshing = False


_snapshot = _Snapshot()


def get_matcher() -> SpiderMatcher:
    """Return this process's matcher; start a background reload of the Spider rows when one is due."""
    snap = _snapshot
    matcher = snap.matcher
    if matcher is not None and time.monotonic() < snap.refresh_due:
        return matcher
    with snap.lock:
        if snap.matcher is None:
            snap.matcher = build_matcher(snap.rows or ())
        interval = settings.SPIDER_REFRESH_INTERVAL
        if not interval:
            snap.refresh_due = float("inf")  # reloads happen only through refresh() and Spider saves
        elif time.monotonic() >= snap.refresh_due and not snap.refreshing:
            snap.refreshing = True
            snap.refresh_due = time.monotonic() + interval
            threading.Thread(target=_refresh_in_background, name="trackable-spiders", daemon=True).start()
        return snap.matcher


def _refresh_in_background() -> None:
    try:
        refresh()
    except Exception:  # a database outage must not kill the thread's caller; the next interval retries
        logger.exception("Could not reload the trackable Spider patterns; keeping the previous ones.")
    finally:
        _snapshot.refreshing = False
        connections.close_all()  # this thread's connections only


def _load_rows() -> tuple[str, ...]:
    from trackable.models import Spider

    db = router.db_for_read(Spider)
    return tuple(Spider.objects.using(db).filter(is_active=True).order_by("pattern").values_list("pattern", flat=True))


def refresh() -> int:
    """Reload the active Spider rows now (one query) and rebuild the matcher if they changed; return their number."""
    rows = _load_rows()
    snap = _snapshot
    if rows != snap.rows or snap.matcher is None:
        matcher = build_matcher(rows)  # built outside the lock: requests keep using the old one meanwhile
        with snap.lock:
            snap.rows, snap.matcher = rows, matcher
    interval = settings.SPIDER_REFRESH_INTERVAL
    snap.refresh_due = time.monotonic() + interval if interval else float("inf")
    return len(rows)


def reset() -> None:
    """Forget the matcher and the Spider rows of this process (the next check starts afresh)."""
    with _snapshot.lock:
        _snapshot.matcher = None
        _snapshot.rows = None
        _snapshot.refresh_due = 0.0


def _after_fork() -> None:
    # A child inherits the snapshot but not the refresh thread: let it start its own.
    _snapshot.lock = threading.Lock()
    _snapshot.refreshing = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def is_spider(user_agent: str | None) -> bool:
    """Return whether `user_agent` is a spider's; a missing or blank one follows TRACKABLE_EMPTY_USER_AGENT_IS_SPIDER."""
    if not user_agent or user_agent.isspace():
        return bool(settings.EMPTY_USER_AGENT_IS_SPIDER)
    matcher = _snapshot.matcher
    if matcher is None or time.monotonic() >= _snapshot.refresh_due:
        matcher = get_matcher()
    return matcher._cached(user_agent[: matcher.max_length])


def frozen_test() -> Callable[[str | None], bool]:
    """Load the Spider rows now (one query) and return a test bound to the matcher they build.

    For imports: every line is judged by the same patterns, loaded before the first one, whatever
    TRACKABLE_SPIDER_REFRESH_INTERVAL says (0 included) and whatever a background reload does meanwhile.
    """
    rows = _load_rows()
    matcher = build_matcher(rows)
    empty_is_spider = bool(settings.EMPTY_USER_AGENT_IS_SPIDER)

    def test(user_agent: str | None) -> bool:
        if not user_agent or user_agent.isspace():
            return empty_is_spider
        return matcher(user_agent)

    return test


def divert(grouped: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """Return a spider's events moved to each data model's `spider_fields`; drop the events without one."""
    from trackable.sites import site

    diverted: dict[str, list[tuple]] = {}
    for data_label, events in grouped.items():
        mapping = getattr(site.get_data_model(data_label), "spider_fields", None) or {}
        kept = [(*event[:3], mapping[event[3]], *event[4:]) for event in events if event[3] in mapping]
        if kept:
            diverted[data_label] = kept
    return diverted


@receiver(post_save, sender="trackable.Spider", dispatch_uid="trackable.spiders.saved")
@receiver(post_delete, sender="trackable.Spider", dispatch_uid="trackable.spiders.deleted")
def _spider_changed(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    if _snapshot.matcher is not None or _snapshot.rows is not None:
        transaction.on_commit(_refresh_after_commit, using=using)


def _refresh_after_commit() -> None:
    """Reload after a save; the row is committed already, so a failure is logged, never raised into the view."""
    try:
        refresh()
    except Exception:  # noqa: BLE001 - the previous matcher stays in use
        logger.exception("Could not reload the trackable Spider patterns after a change; keeping the previous ones.")


@receiver(setting_changed, dispatch_uid="trackable.spiders.setting_changed")
def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("TRACKABLE_"):
        with _snapshot.lock:
            _snapshot.matcher = None  # rebuilt on next use from the same rows, with the new settings
