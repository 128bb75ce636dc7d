"""The relay: publish what the journal holds, exactly once, from a background thread of each process.

The first send of a process opens its journal segment and starts one daemon thread (again in a child
after fork). Every ``TRACKABLE_JOURNAL_RELAY_INTERVAL`` seconds it reads the records committed since
its checkpoint, aggregates them into one message per data model, and publishes them (with publisher
confirms on ``amqp://``). Before publishing it records the batch's boundaries; the message ids derive
from (segment, start, end), so a relay that dies between the publish and the checkpoint publishes the
very same ids again and the fold's ledger drops the copies. Segments whose process died are adopted by
any relay of the host, by :func:`flush` (the fold calls it), and by ``manage.py trackable_relay``.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from trackable import journal, messages, outage, recorded, transport
from trackable.conf import settings
from trackable.exceptions import TrackableConnectionError
from trackable.journal import JournalDamaged, Segment, State, Writer

__all__ = ["append", "flush", "adopt_orphans", "relay_segment", "batch_messages", "reset", "writer"]

logger = logging.getLogger("trackable")

BATCH_BYTES = 1024 * 1024  # bytes of records read (and published) per batch
SEGMENT_BYTES = 16 * 1024 * 1024  # a fully relayed segment this large is replaced by a new one and deleted
ADOPT_INTERVAL = 5.0  # seconds between two looks for orphaned segments
BACKLOG_INTERVAL = 2.0  # seconds between two looks at other processes' unrelayed bytes (for the cap)
MAX_EVENTS_PER_MESSAGE = 2000  # keeps a message far below TRACKABLE_MAX_MESSAGE_BYTES
CONFIRM_PATIENCE = 10.0  # seconds the relay waits for a publisher confirm (within its deadline)

_lock = threading.Lock()
_writer: Writer | None = None
_relay: _Relay | None = None
_exit_registered = False


def append(events: list[tuple[Any, ...]]) -> bool:
    """Append one send's events to this process's journal; return False if refused (cap, disk error)."""
    writer = _writer
    if writer is None:
        writer = _start()
    return writer.append(events)


def writer() -> Writer | None:
    """Return this process's journal writer, if it sent anything yet."""
    return _writer


def _start() -> Writer:
    """Create this process's writer and relay thread (the first send, or the first after fork)."""
    global _writer, _relay, _exit_registered
    with _lock:
        if _writer is not None:
            return _writer
        folder = settings.journal_dir
        if folder is None:
            raise ImproperlyConfigured(
                "TRACKABLE_JOURNAL is on but the journal has no folder: set TRACKABLE_JOURNAL_DIR (or BASE_DIR), "
                "or set TRACKABLE_JOURNAL = False to publish from the request."
            )
        new = Writer(folder, settings.JOURNAL_MAX_BYTES, bool(settings.JOURNAL_FSYNC))
        _relay = _Relay(new)
        _writer = new
        if not _exit_registered:
            atexit.register(_at_exit)
            _exit_registered = True
        _relay.start()
        return new


class _Relay(threading.Thread):
    """The background thread that relays this process's segments and adopts orphans."""

    def __init__(self, writer: Writer) -> None:
        super().__init__(name="trackable-relay", daemon=True)
        self.writer = writer
        self.wake = threading.Event()
        self.next_adopt = 0.0
        self.refusing = False

    def run(self) -> None:
        while _relay is self:
            try:
                self.tick()
            except TrackableConnectionError as err:
                outage.report_failure(err, kept=True)
            except BaseException:  # noqa: BLE001 - the relay must outlive any bug (even a SystemExit raised in it)
                logger.exception("The trackable relay failed; it tries again in a moment.")
            self.wake.wait(settings.JOURNAL_RELAY_INTERVAL)
            self.wake.clear()

    def tick(self) -> None:
        writer = self.writer
        try:
            self.report_refusals()
            for segment in list(writer.segments):
                relay_segment(segment, writer)
            if time.monotonic() >= self.next_adopt:
                self.next_adopt = time.monotonic() + ADOPT_INTERVAL
                adopt_orphans(writer.folder)
        finally:
            _update_backlog(writer)

    def report_refusals(self) -> None:
        """Count refused sends in refused.log and log once when refusing starts and when it stops."""
        writer = self.writer
        with writer.lock:
            refused, writer.refused = writer.refused, 0
            error, writer.error = writer.error, None
        if refused:
            try:
                journal.record_refused(writer.folder, refused)
            except OSError:  # the disk that refused them: count them again at the next tick
                with writer.lock:
                    writer.refused += refused
            if not self.refusing:
                reason = error or (
                    f"the journal holds over TRACKABLE_JOURNAL_MAX_BYTES ({writer.max_bytes} bytes) not yet relayed"
                )
                logger.error("Refused %d tracking events: %s. They are counted in trackable_status.", refused, reason)
            self.refusing = True
        elif self.refusing:
            logger.warning("The trackable journal accepts events again.")
            self.refusing = False


def _update_backlog(writer: Writer, rescan: bool = False) -> None:
    """Give the writer the unrelayed bytes of the folder: its own exactly, other processes' as last seen.

    The other processes' segments are looked at every BACKLOG_INTERVAL seconds (or when `rescan`): a
    folder scan and a checkpoint read per segment, too much for every tick of a busy relay.
    """
    now = time.monotonic()
    if rescan or now >= writer.others_seen_at + BACKLOG_INTERVAL:
        writer.others_backlog = journal_backlog(writer.folder, skip={f"{s.id}{journal.SEGMENT_SUFFIX}" for s in writer.segments})
        writer.others_seen_at = now
    others = writer.others_backlog
    with writer.lock:
        own = sum(max(0, s.size - s.done) for s in writer.segments)
        writer.backlog, writer.appended = others + own, 0


def journal_backlog(folder: Path, skip: set[str] = frozenset()) -> int:  # type: ignore[assignment]
    """Return the bytes not yet relayed in the segments of `folder` (but those named in `skip`)."""
    total = 0
    for name, info in journal.scan(folder):
        if name in skip:
            continue
        try:
            done = journal.load_state(folder / f"{name[: -len(journal.SEGMENT_SUFFIX)]}{journal.STATE_SUFFIX}").done
        except JournalDamaged:
            done = 0
        total += max(0, info.st_size - done)
    return total


def batch_messages(segment_id: str, start: int, end: int, events: list[list[Any]]) -> list[tuple[str, str, list]]:
    """Return (data label, message id, events) of one batch: sums per key and minute, ids from the offsets.

    Identical keys (data model, parent, object, field, minute, breakdown values) are summed keeping the
    minute's first event time, so buckets stay exact; events of different breakdown values (the 7th
    item's "d") stay apart, each with its values. The visitors (its "u") of a key's events are carried
    together, once each: ``{"u": [hash, ...]}`` (``{"u": hash}`` for one), at most MAX_VISITORS per
    event; events without a visitor are summed apart. The order and the ids depend only on the batch's
    bytes.
    """
    entries: dict[tuple, list[Any]] = {}
    keys: dict[int, Any] = {}  # id → key of the extras met (the relay's expansion shares equal values' dicts)
    for data_label, parent_label, pk, field, amount, ts_ms, *extras in events:
        extra = extras[0] if extras else None
        visitor = extra.get("u") if isinstance(extra, dict) and len(extra) == 1 else None
        if not isinstance(visitor, str) and not (isinstance(visitor, list) and all(isinstance(v, str) for v in visitor)):
            visitor = None  # no visitor, or not one the journal writes: passed on as it is, the fold judges it
        key: tuple
        if visitor is not None:
            key = (data_label, parent_label, pk, field, ts_ms // 60_000, "u")
        elif extra is None:
            key = (data_label, parent_label, pk, field, ts_ms // 60_000, None)
        else:
            found = keys.get(id(extra))
            if found is None:
                found = keys[id(extra)] = _extras_key(extra)
            key = (data_label, parent_label, pk, field, ts_ms // 60_000, found)
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = [amount, ts_ms, {}, None if visitor is not None else extra]
        else:
            entry[0] += amount
        if visitor is not None:  # a dict keeps the first-seen order: the same bytes, the same message
            if isinstance(visitor, str):
                entry[2][visitor] = None
            else:
                entry[2].update(dict.fromkeys(visitor))
    grouped: dict[str, list[tuple]] = {}
    for (data_label, parent_label, pk, field, _, _), (amount, ts_ms, seen, extra) in entries.items():
        out = grouped.setdefault(data_label, [])
        head = (data_label, parent_label, pk, field)
        carried = (extra,) if extra else ()
        for part, visitors in _split(amount, list(seen)):
            if visitors:
                out.append((*head, part, ts_ms, {"u": visitors[0] if len(visitors) == 1 else visitors}))
            else:
                out.append((*head, part, ts_ms, *carried))
    batch = []
    for data_label, out in grouped.items():
        for i, first in enumerate(range(0, len(out), MAX_EVENTS_PER_MESSAGE)):
            seed = f"{segment_id}:{start}:{end}:{data_label}:{i}".encode()
            batch.append((data_label, hashlib.sha256(seed).hexdigest()[:32], out[first : first + MAX_EVENTS_PER_MESSAGE]))
    return batch


def _split(amount: int, visitors: list[str]) -> list[tuple[int, list[str]]]:
    """Return (amount, visitors) parts of one key's sum: amounts within one event's limit, visitors in chunks.

    The parts' amounts add up to `amount` exactly; every part carrying visitors has a positive amount (the
    sum of one-visitor events is at least the number of visitors; a sum that is not, which producers never
    write, drops the visitors, as the fold ignores those of events that are not increments).
    """
    chunks = [visitors[i : i + messages.MAX_VISITORS] for i in range(0, len(visitors), messages.MAX_VISITORS)]
    if amount < len(chunks):
        chunks = []
    parts = [(1, chunk) for chunk in chunks[:-1]]  # 1 each: what is left stays positive for the last chunk
    amount -= len(parts)
    last = chunks[-1] if chunks else []
    while amount:  # a sum beyond one event's limit travels as several events
        part = max(-messages.MAX_AMOUNT, min(messages.MAX_AMOUNT, amount))
        parts.append((part, last))
        last = []
        amount -= part
    return parts


def _extras_key(extra: Any) -> Any:
    """Return a hashable key of an event's extras other than a visitor (equal extras, equal keys)."""
    if not extra:
        return None
    if isinstance(extra, dict):
        dims = extra.get("d")
        if isinstance(dims, dict) and all(isinstance(v, str) for v in dims.values()) and len(extra) == 1:
            return ("d", tuple(sorted(dims.items())))
    return ("json", json.dumps(extra, sort_keys=True, default=str))  # anything else: the fold judges it


def _publish_batch(segment: Segment, start: int, end: int, events: list[list[Any]], deadline: float) -> None:
    expanded = recorded.expand(events, lambda n: _count_left_out(segment.folder, n))
    for data_label, message_id, chunk in batch_messages(segment.id, start, end, expanded):
        patience = max(settings.CONNECT_TIMEOUT, min(CONFIRM_PATIENCE, deadline - time.monotonic()))
        transport.publish(messages.build(chunk, message_id), data_label, confirm_timeout=patience)
    segment.published += len(events)


def _count_left_out(folder: Path, events: int) -> None:
    """Count breakdown events the relay could not compute in left-out.log (trackable_status reports them)."""
    try:
        journal.record_events(folder, journal.LEFT_OUT_LOG, events)
    except OSError as err:  # the count is lost, the events were logged already: never stop the relay for it
        logger.warning("Could not count %d left-out breakdown events in %s: %s", events, journal.LEFT_OUT_LOG, err)


def _relay_committed(segment: Segment, deadline: float) -> int:
    """Publish the committed records past the checkpoint; return the new checkpoint.

    One checkpoint write per batch: the intent (start, end) written before publishing says too that all
    before `start` is relayed. The batch's own "done" is written by the next batch's intent, or by the
    first call that finds nothing new (an idle tick, the last relay before a segment is let go): until
    then a crash republishes that batch, with the same message ids, which the fold's ledger drops.
    """
    fsync = bool(settings.JOURNAL_FSYNC)
    path = segment.state_path
    state = segment.saved
    if state is None:  # the file's checkpoint, read once: this process then holds the segment's lock
        state = segment.saved = journal.load_state(path)
        segment.done = state.done
    if state.intent is not None and segment.done < state.intent[1]:
        # A batch published (maybe, or in part) before a crash or a failed publish: the same bytes, the same ids.
        start, end = state.intent
        events, got, problem = journal.read_records(segment.fd, start, end - start)
        if problem or got != end:
            raise JournalDamaged(problem or f"the batch of bytes {start}–{end} recorded before a crash is incomplete")
        _publish_batch(segment, start, end, events, deadline)
        segment.done = end
    done = segment.done
    # Only what is committed now: appends landing while this tick publishes wait for the next tick. Chasing
    # them made a relay under steady traffic publish (and confirm, and checkpoint) every few events.
    committed = segment.current_size()
    published = False
    while done < committed and time.monotonic() < deadline:
        events, end, problem = journal.read_records(segment.fd, done, min(BATCH_BYTES, committed - done))
        if end > done:
            journal.save_state(segment, State(done, (done, end)), fsync)  # the intent, before publishing
            _publish_batch(segment, done, end, events, deadline)
            done = segment.done = end
            published = True
        if problem:
            raise JournalDamaged(problem)
        if not events:  # caught up with the committed records
            break
    if not published:
        segment.save_checkpoint(fsync)
    return done


def relay_segment(segment: Segment, writer: Writer | None, deadline: float = float("inf"), settle: bool = False) -> int:
    """Relay one segment; delete it when fully relayed and no longer written to; set it aside if damaged.

    Return the events published. Holds the segment's relay lock: one thread of a process at a time.
    With `settle`, the checkpoint file is brought up to date too (flush(): its callers then read it).
    """
    if not segment.relay_lock.acquire(timeout=max(0.0, min(deadline - time.monotonic(), 60.0))):
        return 0
    before = segment.published
    try:
        if segment.fd >= 0:
            _relay_to_end(segment, writer, deadline)
            if settle:
                segment.save_checkpoint(bool(settings.JOURNAL_FSYNC))
    except JournalDamaged as err:
        journal.set_aside(segment.folder, segment.path.name, str(err))
        journal.set_aside(segment.folder, segment.state_path.name, None)
        _drop(segment, writer)
    finally:
        segment.relay_lock.release()
    return segment.published - before


def _relay_to_end(segment: Segment, writer: Writer | None, deadline: float) -> None:
    """Publish the committed records; delete the segment once nobody appends to it and all is relayed."""
    done = _relay_committed(segment, deadline)
    if writer is not None:
        if writer.active is segment:
            if done < SEGMENT_BYTES:
                return
            writer.rotate(segment)  # no more appends from now on
        # Appends may have landed after the read above, until the segment stopped being the active one
        # (rotated, or the writer closed by reset()): relay them before calling the segment finished.
        done = _relay_committed(segment, deadline)
    size = segment.current_size()
    if done < size:
        if time.monotonic() >= deadline:
            return
        raise JournalDamaged(f"its last {size - done} bytes are a torn record")
    _unlink(segment.path)  # first the segment (an adopter checks it still exists), then its checkpoint
    _unlink(segment.state_path)
    _drop(segment, writer)


def _drop(segment: Segment, writer: Writer | None) -> None:
    if writer is not None:
        writer.forget(segment)
    else:
        segment.close()


def adopt_orphans(folder: Path, deadline: float = float("inf")) -> int:
    """Relay and delete the segments of `folder` whose process is gone; return the events published."""
    sent = 0
    for name, _ in journal.scan(folder):
        if time.monotonic() >= deadline:
            break
        try:
            segment = journal.open_orphan(folder, name)
        except JournalDamaged as err:
            journal.set_aside(folder, name, str(err))
            continue
        if segment is None:
            continue
        try:
            sent += relay_segment(segment, None, deadline)
        finally:
            with contextlib.suppress(OSError):  # not relayed to its end (the deadline): its checkpoint as it got
                segment.save_checkpoint(bool(settings.JOURNAL_FSYNC))
            segment.close()
    return sent


def flush(timeout: float = 10.0) -> int:
    """Relay now, in this thread, this process's journal and the host's orphaned segments; return events sent.

    Raise TrackableConnectionError when the broker does not take them (they stay in the journal).
    """
    deadline = time.monotonic() + timeout
    sent = 0
    current = _writer
    if current is not None and current.pid == os.getpid():
        for segment in list(current.segments):
            sent += relay_segment(segment, current, deadline, settle=True)
        _update_backlog(current, rescan=True)
    folder = current.folder if current is not None else settings.journal_dir
    if folder is not None and folder.is_dir():
        sent += adopt_orphans(folder, deadline)
    return sent


def reset() -> None:
    """Stop this process's relay and close its segments (left to be relayed by whoever adopts them)."""
    global _writer, _relay
    with _lock:
        old_writer, old_relay = _writer, _relay
        _writer = _relay = None
    if old_relay is not None:
        old_relay.wake.set()
    if old_writer is not None and old_writer.pid == os.getpid():
        old_writer.close()


def _at_exit() -> None:
    """Relay what can be relayed within TRACKABLE_JOURNAL_EXIT_TIMEOUT, then let go of the segments."""
    current = _writer
    if current is None or current.pid != os.getpid():
        return
    if current.active is not None:
        current.rotate(current.active)  # no more appends: the segment can be relayed to its end and deleted
    try:
        flush(settings.JOURNAL_EXIT_TIMEOUT)
    except TrackableConnectionError as err:
        logger.warning("At exit, the trackable journal could not be relayed (%s); another process will adopt it.", err)
    except Exception:  # noqa: BLE001 - exit must go on
        logger.exception("At exit, relaying the trackable journal failed; another process will adopt it.")
    reset()


def _after_fork_in_child() -> None:
    """Start the child without its parent's segments or thread: its first send opens a segment of its own."""
    global _writer, _relay, _lock
    inherited = _writer
    _writer = _relay = None
    _lock = threading.Lock()  # another thread may have held it at the fork
    if inherited is not None:
        for segment in inherited.segments:
            with contextlib.suppress(OSError):
                os.close(segment.fd)  # our copy only: the parent keeps its descriptor, and so its lock
            if segment.state_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(segment.state_fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
