"""Broker outages on the request path: log and mail ADMINS once per outage, never from the request thread."""
from __future__ import annotations

import logging
import threading
import time

from trackable.conf import settings

__all__ = ["report_failure", "report_success", "last_notifier"]

logger = logging.getLogger("trackable")
CACHE_KEY = "trackable:broker-outage-mailed"


class _Outage:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: float | None = None  # monotonic time of the first failure of this outage
        self.lost = 0
        self.spooled = 0
        self.mailed_at = float("-inf")
        self.notifier: threading.Thread | None = None


_outage = _Outage()


def report_failure(error: Exception, *, spooled: bool) -> None:
    """Note one event that could not be published; log and mail at most once per outage or window."""
    outage = _outage
    with outage.lock:
        if spooled:
            outage.spooled += 1
        else:
            outage.lost += 1
        first = outage.started is None
        if first:
            outage.started = time.monotonic()
        interval = settings.OUTAGE_MAIL_INTERVAL
        mail = bool(interval) and time.monotonic() - outage.mailed_at >= interval
        if mail:
            outage.mailed_at = time.monotonic()
    if first:
        logger.error("The trackable broker is unreachable (%s); events are %s.", error, "spooled" if spooled else "lost")
    if mail:
        outage.notifier = threading.Thread(target=_mail_admins, args=(str(error), interval), daemon=True)
        outage.notifier.start()


def report_success() -> None:
    """Close the current outage, if any, with one log line saying what it cost."""
    outage = _outage
    if outage.started is None:
        return
    with outage.lock:
        if outage.started is None:
            return
        seconds, lost, spooled = time.monotonic() - outage.started, outage.lost, outage.spooled
        outage.started, outage.lost, outage.spooled = None, 0, 0
    logger.warning(
        "The trackable broker is back after %.1fs; %d events were lost and %d spooled meanwhile.", seconds, lost, spooled
    )


def last_notifier() -> threading.Thread | None:
    """Return the thread of the latest outage mail (tests join it)."""
    return _outage.notifier


def reset() -> None:
    """Forget the outage state (after fork, and in tests)."""
    global _outage
    _outage = _Outage()


def _mail_admins(error: str, interval: float) -> None:
    """Mail ADMINS unless another process of the site did within `interval` (shared through the cache)."""
    from django.core.cache import cache
    from django.core.mail import mail_admins

    try:
        if not cache.add(CACHE_KEY, time.time(), timeout=interval):
            return
    except Exception:  # noqa: BLE001 - a broken cache must not stop the mail
        logger.exception("Could not reach the cache to de-duplicate the outage mail.")
    mail_admins(
        "Tracking broker unreachable",
        f"django-trackable could not publish to its broker: {error}\n\n"
        "Views keep answering; events are spooled if TRACKABLE_SPOOL_DIR is set, otherwise they are lost "
        f"until the broker is back. You will not be mailed about this again for {interval:g} seconds.",
        fail_silently=True,
    )
