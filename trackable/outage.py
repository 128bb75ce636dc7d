"""Broker outages: one log line and at most one mail to ADMINS per outage, never from the request thread.

The journal's relay reports its failed publishes here (events wait in the journal); without the
journal, the request path does (events are lost).
"""
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
        self.kept = False
        self.mailed_at = float("-inf")
        self.notifier: threading.Thread | None = None


_outage = _Outage()


def report_failure(error: Exception, *, kept: bool, lost: int = 0) -> None:
    """Note a publish that failed (its events `kept` in the journal, or `lost`); log and mail once per outage."""
    outage = _outage
    with outage.lock:
        outage.lost += lost
        outage.kept = outage.kept or kept
        first = outage.started is None
        if first:
            outage.started = time.monotonic()
        interval = settings.OUTAGE_MAIL_INTERVAL
        mail = bool(interval) and time.monotonic() - outage.mailed_at >= interval
        if mail:
            outage.mailed_at = time.monotonic()
    if first:
        fate = "kept in the journal until it is back" if kept else "lost"
        logger.error("The trackable broker is unreachable (%s); events are %s.", error, fate)
    if mail:
        notifier = threading.Thread(target=_mail_admins, args=(str(error), interval, kept), daemon=True)
        notifier.start()
        outage.notifier = notifier  # published once started: another thread may join it at once


def report_success() -> None:
    """Close the current outage, if any, with one log line saying what it cost."""
    outage = _outage
    if outage.started is None:
        return
    with outage.lock:
        if outage.started is None:
            return
        seconds, lost, kept = time.monotonic() - outage.started, outage.lost, outage.kept
        outage.started, outage.lost, outage.kept = None, 0, False
    if kept:
        logger.warning("The trackable broker is back after %.1fs; the journal relays what it kept meanwhile.", seconds)
    else:
        logger.warning("The trackable broker is back after %.1fs; %d events were lost meanwhile.", seconds, lost)


def last_notifier() -> threading.Thread | None:
    """Return the thread of the latest outage mail (tests join it)."""
    return _outage.notifier


def reset() -> None:
    """Forget the outage state (after fork, and in tests)."""
    global _outage
    _outage = _Outage()


def _mail_admins(error: str, interval: float, kept: bool) -> None:
    """Mail ADMINS unless another process of the site did within `interval` (shared through the cache)."""
    from django.core.cache import cache
    from django.core.mail import mail_admins

    try:
        if not cache.add(CACHE_KEY, time.time(), timeout=interval):
            return
    except Exception:  # noqa: BLE001 - a broken cache must not stop the mail
        logger.exception("Could not reach the cache to de-duplicate the outage mail.")
    body = (
        f"django-trackable could not publish to its broker: {error}\n\n"
        + (
            "Views keep answering; events wait in the trackable journal and are relayed when the broker is back "
            "(up to TRACKABLE_JOURNAL_MAX_BYTES; past it they are refused and counted). "
            if kept
            else "Views keep answering; without the journal (TRACKABLE_JOURNAL = False) events are lost until the "
            "broker is back. "
        )
        + f"You will not be mailed about this again for {interval:g} seconds."
    )
    try:  # not fail_silently=True: Django 6.1 deprecates it
        mail_admins("Tracking broker unreachable", body)
    except Exception:  # noqa: BLE001 - a mail server that fails must not stop the notifier
        logger.exception("Could not mail ADMINS about the broker outage.")
