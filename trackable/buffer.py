"""An opt-in producer-side buffer: many increments, one message per data model.

With ``TRACKABLE_BUFFER_MAX_EVENTS`` above 0, ``send_increment_message`` & co add their events to an
in-process buffer instead of publishing. Identical keys (data model, parent, object, field, minute) are
summed, keeping the minute's first event time, so buckets stay exact. The buffer is published (one
message per data model, split every ``MAX_EVENTS_PER_MESSAGE`` events) when it holds ``max_events``
events (by the thread that adds the last one), when its oldest event is ``max_delay`` seconds old (by a
background flusher thread), at process exit (atexit), and by :func:`flush`. A child process after fork
starts with an empty buffer: the parent's events are sent once, by the parent.

Loss window: a hard crash (SIGKILL, power loss) loses at most what the buffer holds: ``max_events``
events or ``max_delay`` seconds of them, whichever comes first. A flush that fails is handled by
the same path as any publish (``trackable.delivery.deliver``: spooled with ``TRACKABLE_SPOOL_DIR``), and
otherwise logged with the number of events lost; it never raises into a view.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from trackable import messages
from trackable.conf import settings
from trackable.delivery import deliver
from trackable.exceptions import TrackableConnectionError

__all__ = ["enabled", "add", "flush", "pending", "MAX_EVENTS_PER_MESSAGE"]

logger = logging.getLogger("trackable")

# Keeps a message far below TRACKABLE_MAX_MESSAGE_BYTES (an event is ~60–120 bytes of JSON).
MAX_EVENTS_PER_MESSAGE = 2000

Event = tuple[str, str, Any, str, int, int]


class _Buffer:
    """The events gathered by this process and not yet published."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.entries: dict[tuple, list[int]] = {}  # key → [amount, first ts_ms]
        self.count = 0  # events added since the last flush (before aggregation)
        self.opened: float | None = None  # monotonic time of the oldest pending event
        self.flusher: threading.Thread | None = None

    def add(self, grouped: dict[str, list[Event]], max_events: int) -> None:
        full = None
        with self.lock:
            entries = self.entries
            for events in grouped.values():
                for data_label, parent_label, pk, field, amount, ts_ms, *extras in events:
                    # One visitor's events sum up; different visitors stay apart, each with its hash.
                    visitor = extras[0].get("u") if extras else None
                    key = (data_label, parent_label, pk, field, ts_ms // 60_000, visitor)
                    entry = entries.get(key)
                    if entry is None:
                        entries[key] = [amount, ts_ms]
                    else:
                        entry[0] += amount
                    self.count += 1
            if self.opened is None:
                self.opened = time.monotonic()
                self.start_flusher()
                self.wake.set()
            if self.count >= max_events:
                full = self.take()
        if full:
            publish_entries(full)

    def take(self) -> dict[tuple, list[int]]:
        """Return the pending entries and start an empty buffer (call with the lock held)."""
        entries, self.entries = self.entries, {}
        self.count = 0
        self.opened = None
        return entries

    def start_flusher(self) -> None:
        if self.flusher is None:
            self.flusher = threading.Thread(target=self.run_flusher, name="trackable-buffer-flusher", daemon=True)
            self.flusher.start()

    def run_flusher(self) -> None:
        """Publish the buffer whenever its oldest event is `max_delay` seconds old."""
        while _buffer is self:
            self.wake.clear()
            opened = self.opened
            if opened is None:
                self.wake.wait()
                continue
            remaining = opened + settings.BUFFER_MAX_DELAY - time.monotonic()
            if remaining > 0:
                self.wake.wait(remaining)
                continue
            with self.lock:
                due = self.take() if self.opened == opened else None
            if due:
                publish_entries(due)

    def flush(self) -> int:
        with self.lock:
            entries = self.take()
        return publish_entries(entries)


def publish_entries(entries: dict[tuple, list[int]]) -> int:
    """Publish aggregated entries as one message per data model (split when large); return the events sent."""
    grouped: dict[str, list[Event]] = {}
    for (data_label, parent_label, pk, field, _, visitor), (amount, ts_ms) in entries.items():
        events = grouped.setdefault(data_label, [])
        extras = ({"u": visitor},) if visitor else ()
        while amount:  # a sum beyond one event's limit travels as several events
            part = max(-messages.MAX_AMOUNT, min(messages.MAX_AMOUNT, amount))
            events.append((data_label, parent_label, pk, field, part, ts_ms, *extras))
            amount -= part
    sent = 0
    for data_label, events in grouped.items():
        for start in range(0, len(events), MAX_EVENTS_PER_MESSAGE):
            chunk = events[start : start + MAX_EVENTS_PER_MESSAGE]
            try:
                delivered = deliver(messages.build(chunk), data_label)  # spooled when TRACKABLE_SPOOL_DIR is set
            except TrackableConnectionError as err:
                delivered = False
                error = err
            else:
                error = "broker unreachable"
            if not delivered:
                logger.warning("%d buffered tracking events lost: %s", len(chunk), error)
                continue
            sent += len(chunk)
    return sent


_buffer = _Buffer()


def enabled() -> bool:
    """Return whether sends go through the buffer (TRACKABLE_BUFFER_MAX_EVENTS above 0)."""
    return settings.BUFFER_MAX_EVENTS > 0


def add(grouped: dict[str, list[Event]]) -> None:
    """Add the events of one send (grouped by data model label) to this process's buffer."""
    _buffer.add(grouped, settings.BUFFER_MAX_EVENTS)


def flush() -> int:
    """Publish everything buffered now; return the number of (aggregated) events published."""
    return _buffer.flush()


def pending() -> int:
    """Return how many events were added since the last flush."""
    return _buffer.count


def _forget_in_child() -> None:
    """Start the child of a fork with an empty buffer: the parent publishes what it gathered."""
    global _buffer
    _buffer = _Buffer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(flush)
