"""Who is a visitor, without keeping who they are: a keyed hash computed on the request path.

A send whose data model has UniqueVisitors fields carries the visitor's hash in its events: 16 hex
digits of a BLAKE2b keyed with the salt of the current period (TRACKABLE_VISITOR_SALT_ROTATION, a day
by default, cut at the midnights of TRACKABLE_TIME_ZONE). What is hashed (TRACKABLE_VISITOR_IDENTITY):

* ``"request"`` (default): the client IP (REMOTE_ADDR) and the User-Agent header;
* ``"session"``: the session key, else as ``"request"``;
* ``"user"``: the signed-in user's primary key, else as ``"request"``;
* an explicit ``visitor=`` of the send (a user id, a device id), whatever the setting says.

Salts: one random 32-byte row per period in the VisitorSalt table, created for the current and the
next period by whichever process loads them first, deleted as soon as their period ends. Processes
load them out of band (a background thread at each period change, or load_salts() at start-up), so
the request path never queries the database; the key used is HMAC(SECRET_KEY, salt), so neither a
copy of the database alone nor SECRET_KEY alone recomputes a hash. Once a period's salt row is deleted
and the processes moved on, nobody can tell whether two hashes of different periods are one person.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any

from django.conf import settings as django_settings
from django.db import connections, router
from django.http import HttpRequest

from trackable.buckets import bucket_start, next_bucket_start
from trackable.conf import settings

__all__ = ["IDENTITIES", "ROTATIONS", "visitor_hash", "load_salts", "reset", "clock", "stats"]

logger = logging.getLogger("trackable")

IDENTITIES = ("request", "session", "user")
ROTATIONS = ("hour", "day", "week", "month", "never")
# "never": one salt for good (kept until deleted by hand): hashes stay linkable, i.e. pseudonymous data.
_FOREVER = (datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))
HASH_BYTES = 8  # 16 hex digits: collisions stay below one in a million at ten million visitors a period
_PERSON = b"trackable-uv"

#: The clock (seconds since the epoch) hashes and salts read; tests replace it.
clock = time.time
#: Sends that could not count their visitor because this process had no salt loaded yet.
stats = {"no_salt": 0}


class _Salts:
    """This process's keyed hashes: {period start (epoch s): (period end, keyed BLAKE2b)}, and the current one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.periods: dict[float, tuple[float, Any]] = {}
        self.current: tuple[float, float, Any] | None = None
        self.loading = False


_salts = _Salts()


def visitor_hash(request: HttpRequest | None, visitor: Any = None) -> str | None:
    """Return the hex hash of the visitor of `request` (or of the explicit `visitor`), or None.

    None means nothing to count: no request and no visitor, a spider (with spider filtering on), or no
    salt loaded in this process yet (counted in stats["no_salt"]; a background load starts).
    """
    # The request path: one call per tracked send, so it is written for speed (see docs/performance.rst):
    # settings read as attributes, one encode of the identity, a copy of the period's keyed BLAKE2b state.
    if request is not None and settings.USER_AGENT_FILTERING and _is_spider(request):
        return None
    if visitor is not None:
        material = f"x\0{visitor!s}"
    elif request is not None:
        material = _identity(request)
    else:
        return None
    now = clock()
    current = _salts.current
    if current is not None and current[0] <= now < current[1]:
        keyed = current[2]
    else:
        keyed = _current_key(now)
        if keyed is None:
            stats["no_salt"] += 1
            return None
    digest = keyed.copy()  # a copy of the keyed state costs less than keying a new hash
    digest.update(material.encode("utf-8", "replace"))
    return digest.hexdigest()


def _is_spider(request: HttpRequest) -> bool:
    from trackable import spiders

    return spiders.is_spider(request.META.get("HTTP_USER_AGENT"))


def _identity(request: HttpRequest) -> str:
    """Return what identifies the visitor of `request`, tagged by kind ("r", "s", "u"); hashed, never kept."""
    mode = settings.VISITOR_IDENTITY
    if mode != "request":
        if mode == "session":
            session = getattr(request, "session", None)
            key = getattr(session, "session_key", None)
            if key:
                return f"s\0{key}"
        elif mode == "user":
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                return f"u\0{user.pk!s}"
    meta = request.META
    agent = meta.get("HTTP_USER_AGENT", "")
    limit = settings.USER_AGENT_MAX_LENGTH
    if len(agent) > limit:
        agent = agent[:limit]
    return f"r\0{meta.get('REMOTE_ADDR', '')}\0{agent}"


def _current_key(now: float) -> Any:
    current = _salts.current
    if current is not None and current[0] <= now < current[1]:
        return current[2]
    with _salts.lock:
        # Forget the keys of ended periods at once: a past hash cannot be recomputed in this process.
        for start in [s for s, (end, _) in _salts.periods.items() if end <= now]:
            del _salts.periods[start]
        found = next(((s, e, k) for s, (e, k) in _salts.periods.items() if s <= now < e), None)
        _salts.current = found
        ahead = found is not None and any(s >= found[1] for s in _salts.periods)
    if not ahead:
        _load_in_background()  # the next period's salt, before it is needed (or the current one)
    return None if found is None else found[2]


def _load_in_background() -> None:
    with _salts.lock:
        if _salts.loading:
            return
        _salts.loading = True
    threading.Thread(target=_load_quietly, name="trackable-salts", daemon=True).start()


def _load_quietly() -> None:
    try:
        load_salts()
    except Exception:  # a database outage must not kill anything; the next period change retries
        logger.exception("Could not load the trackable visitor salts; unique visitors are not counted meanwhile.")
    finally:
        _salts.loading = False
        connections.close_all()  # this thread's connections only


def _periods(now: float) -> list[tuple[datetime, datetime]]:
    """Return the (start, end) of the current and the next salt period, aware UTC."""
    rotation, zone = settings.VISITOR_SALT_ROTATION, settings.time_zone
    if rotation == "never":
        return [_FOREVER]
    start = bucket_start(datetime.fromtimestamp(now, tz=timezone.utc), rotation, zone)
    end = next_bucket_start(start, rotation, zone)
    return [(start, end), (end, next_bucket_start(end, rotation, zone))]


def load_salts(now: float | None = None) -> int:
    """Create the salts of the current and next period if missing, delete ended ones, load them; return how many.

    Call it once at process start (e.g. in wsgi.py, after django.setup()) so the first requests count
    their visitors too; afterwards each process reloads in the background when a period ends.
    """
    from trackable.models import VisitorSalt

    now = clock() if now is None else now
    db = router.db_for_write(VisitorSalt)
    periods = _periods(now)
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    VisitorSalt.objects.using(db).filter(period_end__lte=moment).delete()
    VisitorSalt.objects.using(db).bulk_create(
        [VisitorSalt(period_start=s, period_end=e, salt=os.urandom(32)) for s, e in periods], ignore_conflicts=True
    )
    # Whoever created a period's row first wins: every process reads the same salt back.
    rows = VisitorSalt.objects.using(db).filter(period_start__in=[s for s, _ in periods])
    secret = django_settings.SECRET_KEY.encode()
    loaded = {row.period_start.timestamp(): (row.period_end.timestamp(), _keyed(secret, bytes(row.salt))) for row in rows}
    with _salts.lock:
        _salts.periods = loaded
        _salts.current = None
    return len(loaded)


def _keyed(secret: bytes, salt: bytes) -> Any:
    key = hmac.digest(secret, salt, "sha256")
    return hashlib.blake2b(digest_size=HASH_BYTES, key=key, person=_PERSON)


def rotate_salts(now: float | None = None) -> int:
    """Delete the salts of ended periods (the fold calls it); return how many were deleted."""
    from trackable.models import VisitorSalt

    moment = datetime.fromtimestamp(clock() if now is None else now, tz=timezone.utc)
    deleted, _ = VisitorSalt.objects.using(router.db_for_write(VisitorSalt)).filter(period_end__lte=moment).delete()
    return deleted


def reset() -> None:
    """Forget this process's keys (tests; a changed setting)."""
    with _salts.lock:
        _salts.periods = {}
        _salts.current = None


def _after_fork() -> None:
    _salts.lock = threading.Lock()
    _salts.loading = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
