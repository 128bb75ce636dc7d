"""The outbox journal: each send appends its events to this process's segment file; no network, no database.

Layout of ``TRACKABLE_JOURNAL_DIR``::

    <24 hex digits>.seg     a segment: records appended by one process, which holds an flock on it while it lives
    <24 hex digits>.state   the relay's checkpoint of that segment: {"done": offset, "intent": [start, end] | null},
                            padded with spaces to 128 bytes and rewritten in place
    refused.log             one line "<unix time> <events>" each time sends were refused (the size cap)
    left-out.log            the same, each time the relay left out breakdown events it could not compute
    damaged/                files set aside (a bad record, a symlink, a FIFO, a name the journal never writes)

A record is a 4-byte little-endian payload length, the payload's CRC-32 (4 bytes), and the payload: the
compact JSON list of the send's events. One ``os.write`` on an ``O_APPEND`` descriptor, under a thread lock,
writes a whole record; a record whose bytes are not all there yet is simply not committed yet.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "Segment",
    "Writer",
    "State",
    "Fragment",
    "encode",
    "read_records",
    "load_state",
    "save_state",
    "open_orphan",
    "set_aside",
    "scan",
    "damaged_count",
    "refused_count",
    "record_events",
    "logged_events",
    "record_refused",
    "SEGMENT_SUFFIX",
]

logger = logging.getLogger("trackable")

HEADER = struct.Struct("<II")
MAX_RECORD = 256 * 1024  # bytes of one send's payload; a send carries a handful of events
SEGMENT_SUFFIX = ".seg"
STATE_SUFFIX = ".state"
NEW_SUFFIX = ".new"  # a segment being created (hidden until its owner holds the lock)
HIDDEN_LIFETIME = 3600  # seconds after which a hidden file (a segment or checkpoint never renamed) is removed
DAMAGED = "damaged"
REFUSED_LOG = "refused.log"
LEFT_OUT_LOG = "left-out.log"  # breakdown events the relay could not compute (trackable/recorded.py)
MAX_STATE_BYTES = 4096
STATE_BYTES = 128  # a checkpoint as written: its JSON padded with spaces (rewritten in place)
_SEGMENT_NAME = re.compile(r"[0-9a-f]{24}\.seg")
_STATE_NAME = re.compile(r"[0-9a-f]{24}\.state")
OPEN_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False, default=lambda v: _default(v)).encode


class JournalDamaged(Exception):
    """A segment holds bytes that are not a valid record: it is set aside, never retried."""


# The events of the common sends (six items with an integer pk; seven when the 7th is a Fragment),
# formatted without the JSON encoder: their labels and field are model labels and a field name, identifiers
# that JSON writes as they are. Anything JSON would escape (a quote, a backslash, a control or non-ASCII
# character) sends the record the encoder's way. Costs a fifth of the encoder's time in a request's cold caches.
_EVENT = '["%s","%s",%d,"%s",%d,%d]'
_EVENT_WITH = '["%s","%s",%d,"%s",%d,%d,%s]'
_PLAIN = re.compile(r"[A-Za-z0-9_.]*")
_plain_names: set[tuple[str, str, str]] = set()  # (data label, parent label, field) checked plain: a few per site
MAX_PLAIN_NAMES = 10_000


class Fragment:
    """A value already written as compact JSON text (``text``), by its maker, the fast way.

    The journal writes ``text`` where the value goes; the encoder, where a record needs it, writes
    the value ``text`` parses to (the same JSON).
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def value(self) -> Any:
        """Return the value the text stands for."""
        return json.loads(self.text)


def _default(value: Any) -> Any:
    if type(value) is Fragment:
        return value.value()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(events: list[tuple[Any, ...]]) -> bytes:
    """Return one framed record carrying `events`."""
    text = _formatted(events)
    payload = (_dumps(events) if text is None else text).encode("ascii")
    if len(payload) > MAX_RECORD:
        raise ValueError(
            f"One send carries {len(events)} events ({len(payload)} bytes); the journal takes at most "
            f"{MAX_RECORD} bytes per send: send them in several calls."
        )
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


_ONE_EVENT = "[" + _EVENT + "]"
_ONE_EVENT_WITH = "[" + _EVENT_WITH + "]"


def _formatted(events: list[tuple[Any, ...]]) -> str | None:
    """Return the JSON text of `events` formatted directly, or None when one of them needs the encoder."""
    if len(events) == 1:  # the most common sends: one plain event, with a breakdowns' item or not
        event = events[0]
        if (
            type(event) is tuple and len(event) >= 6 and type(event[2]) is int and type(event[4]) is int
            and type(event[5]) is int and ((event[0], event[1], event[3]) in _plain_names)
        ):
            if len(event) == 6:
                return _ONE_EVENT % event
            if len(event) == 7 and type(event[6]) is Fragment:
                return _ONE_EVENT_WITH % (event[0], event[1], event[2], event[3], event[4], event[5], event[6].text)
    pieces = []
    for event in events:
        if type(event) is not tuple or len(event) < 6 or type(event[2]) is not int or type(event[4]) is not int:
            return None
        if type(event[5]) is not int:
            return None
        names = (event[0], event[1], event[3])
        if not (names in _plain_names or _check_plain(names)):
            return None
        if len(event) == 6:
            pieces.append(_EVENT % event)
        elif len(event) == 7 and type(event[6]) is Fragment:
            pieces.append(_EVENT_WITH % (*event[:6], event[6].text))
        else:
            return None
    return "[" + ",".join(pieces) + "]"


def _check_plain(names: tuple[str, str, str]) -> bool:
    """Return whether the names are strings JSON writes as they are (remembered when they are)."""
    if not all(type(name) is str and _PLAIN.fullmatch(name) for name in names):
        return False
    if len(_plain_names) < MAX_PLAIN_NAMES:
        _plain_names.add(names)
    return True


class Segment:
    """One segment file, open and flock-ed by this process (its writer or its adopter)."""

    def __init__(self, folder: Path, segment_id: str, fd: int, size: int) -> None:
        self.folder = folder
        self.id = segment_id
        self.fd = fd
        self.size = size  # bytes appended, as far as this process knows (its own segments)
        self.done = 0  # bytes relayed, as far as this process knows
        self.saved: State | None = None  # the checkpoint as its file holds it, once this process read or wrote it
        self.state_fd = -1  # the checkpoint file, open once written
        self.published = 0  # events this process published from it
        self.relay_lock = threading.Lock()  # one relaying thread at a time within a process
        self.broken = False  # a write failed: no more appends; relay what is there and rotate

    @property
    def path(self) -> Path:
        return self.folder / f"{self.id}{SEGMENT_SUFFIX}"

    @property
    def state_path(self) -> Path:
        return self.folder / f"{self.id}{STATE_SUFFIX}"

    def current_size(self) -> int:
        """Return the size of the file now (appends of other threads included)."""
        return os.fstat(self.fd).st_size

    def save_checkpoint(self, fsync: bool = False) -> None:
        """Write the checkpoint as relayed so far (``done``), if its file says less (the relay's lock held).

        Never over a batch recorded but not (all) published: whoever relays the segment next must publish
        those very bytes again, under the same message ids, before anything after them.
        """
        saved = self.saved
        if self.fd < 0 or saved is None or saved == (self.done, None):
            return
        if saved.intent is not None and self.done < saved.intent[1]:
            return
        save_state(self, State(self.done, None), fsync)

    def close(self) -> None:
        """Close the descriptors (the segment's, which releases the flock, and its checkpoint's)."""
        if self.state_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.state_fd)
            self.state_fd = -1
        if self.fd >= 0:
            try:
                os.close(self.fd)
            finally:
                self.fd = -1

    @classmethod
    def create(cls, folder: Path) -> Segment:
        """Create a new segment in `folder` and lock it for this process's lifetime."""
        folder.mkdir(parents=True, exist_ok=True)
        segment_id = f"{time.time_ns():016x}{os.urandom(4).hex()}"
        path = folder / f"{segment_id}{SEGMENT_SUFFIX}"
        # Created under a hidden name, locked, then renamed into view: an adopter scanning the folder must
        # never see a segment before its owner holds the lock (it would take the lock and refuse the send).
        hidden = folder / f".{segment_id}{SEGMENT_SUFFIX}{NEW_SUFFIX}"
        # O_RDWR: the relay reads the segment through the same descriptor (pread ignores O_APPEND).
        fd = os.open(hidden, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(hidden, path)
        except OSError:
            os.close(fd)
            _unlink(hidden)
            raise
        return cls(folder, segment_id, fd, 0)


class Writer:
    """This process's appender: one active segment, the cap, and the refusals since the last report."""

    def __init__(self, folder: Path, max_bytes: int, fsync: bool) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.active: Segment | None = None
        self.segments: list[Segment] = []  # this process's segments, oldest first, until fully relayed
        self.backlog = 0  # unrelayed bytes of the whole folder at the relay's last scan
        self.appended = 0  # bytes appended since that scan
        self.others_backlog = 0  # of that: other processes' segments, as last seen (the relay looks every few seconds)
        self.others_seen_at = float("-inf")  # time.monotonic() of that look
        self.refused = 0  # events refused (cap or I/O error), not yet written to refused.log
        self.error: str | None = None  # the last I/O error, reported by the relay

    def append(self, events: list[tuple[Any, ...]]) -> bool:
        """Append one record; return False (and count the events) when the cap or an I/O error refuses it."""
        record = encode(events)
        with self.lock:
            if self.backlog + self.appended + len(record) > self.max_bytes:
                self.refused += len(events)
                return False
            segment = self.active
            try:
                if segment is None:
                    segment = self.active = Segment.create(self.folder)
                    self.segments.append(segment)
                written = os.write(segment.fd, record)
                if self.fsync:
                    os.fdatasync(segment.fd)
            except OSError as err:
                self._broken(segment, str(err))
                self.refused += len(events)
                return False
            if written != len(record):  # disk full: the record is torn; the segment takes no more
                self._broken(segment, f"short write of {written} of {len(record)} bytes")
                self.refused += len(events)
                return False
            segment.size += written
            self.appended += written
        return True

    def _broken(self, segment: Segment | None, error: str) -> None:
        self.error = error
        if segment is not None:
            segment.broken = True
            self.active = None

    def rotate(self, segment: Segment) -> bool:
        """Stop appending to `segment` (the relay finished it); return whether it was the active one."""
        with self.lock:
            if self.active is segment:
                self.active = None
                return True
            return False

    def forget(self, segment: Segment) -> None:
        """Drop a fully relayed (deleted) or set-aside segment."""
        with self.lock:
            if segment in self.segments:
                self.segments.remove(segment)
            if self.active is segment:
                self.active = None
        segment.close()

    def close(self) -> None:
        """Close every segment (releasing their locks: what is left becomes an orphan to adopt)."""
        with self.lock:
            segments, self.segments, self.active = self.segments, [], None
        for segment in segments:
            # Never close under a relaying thread: the descriptor's number could be reused for another file.
            if segment.relay_lock.acquire(timeout=30):
                try:
                    with contextlib.suppress(OSError):  # the adopter republishes the last batch, which the fold drops
                        segment.save_checkpoint(self.fsync)
                    segment.close()
                finally:
                    segment.relay_lock.release()


# -- reading -----------------------------------------------------------------------------------------


class State(NamedTuple):
    """A segment's checkpoint: bytes relayed, and the batch being published (start, end) if any."""

    done: int
    intent: tuple[int, int] | None


def load_state(path: Path) -> State:
    """Return the checkpoint in `path` (nothing relayed when there is none); raise JournalDamaged if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | OPEN_FLAGS)
    except FileNotFoundError:
        return State(0, None)
    except OSError as err:
        raise JournalDamaged(f"checkpoint {path.name} cannot be opened: {err}") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise JournalDamaged(f"checkpoint {path.name} is not a regular file")
        raw = os.read(fd, MAX_STATE_BYTES + 1)
    finally:
        os.close(fd)
    if not raw.strip(b" \x00"):  # left empty or zeroed by power loss (it is written in place): as if missing
        return State(0, None)
    try:
        data = json.loads(raw)
        done, intent = data["done"], data["intent"]
        if type(done) is not int or done < 0:
            raise ValueError("done")
        if intent is not None:
            start, end = intent
            if type(start) is not int or type(end) is not int or not done <= start < end:
                raise ValueError("intent")
            intent = (start, end)
    except (ValueError, TypeError, KeyError, RecursionError) as err:
        raise JournalDamaged(f"checkpoint {path.name} is not a valid checkpoint") from err
    return State(done, intent)


def save_state(segment: Segment, state: State, fsync: bool = False) -> None:
    """Write the segment's checkpoint in place: STATE_BYTES at offset 0 of its file, kept open.

    One small ``pwrite`` (a process killed cannot tear it) instead of a file renamed over the old one,
    whose cost on ext4 (it starts the new file's writeback) was most of a relay tick's. A file that
    power loss left empty or zeroed reads as a missing one does, "nothing relayed" (load_state).
    """
    body = _dumps({"done": state.done, "intent": list(state.intent) if state.intent else None}).encode()
    if segment.state_fd < 0:
        segment.state_fd = os.open(segment.state_path, os.O_RDWR | os.O_CREAT | OPEN_FLAGS, 0o600)
    padded = body.ljust(STATE_BYTES)
    if os.pwrite(segment.state_fd, padded, 0) != len(padded):
        raise OSError(f"short write of the checkpoint {segment.state_path.name}")
    if fsync:
        os.fsync(segment.state_fd)
    segment.saved = state


def read_records(fd: int, start: int, limit: int) -> tuple[list[list[Any]], int, str | None]:
    """Return (events, end offset, problem) of the whole records in at most `limit` bytes from `start`.

    A record whose bytes are not all there ends the read without a problem (not committed yet);
    a bad length, CRC or payload ends it with a problem that names the offset.
    """
    data = os.pread(fd, limit, start)
    view = memoryview(data)
    spans: list[tuple[int, int]] = []  # (header offset, payload end) of the records whose CRC holds
    problem = None
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        if length > MAX_RECORD or length == 0:
            problem = f"a record at byte {start + pos} claims {length} bytes"
            break
        end = pos + HEADER.size + length
        if end > len(data):
            break
        if zlib.crc32(view[pos + HEADER.size : end]) != crc:
            problem = f"the record at byte {start + pos} fails its CRC check"
            break
        spans.append((pos, end))
        pos = end
    events: list[list[Any]] = []
    for at, payload in enumerate(_payloads(data, spans)):
        if payload is None:
            return events, start + spans[at][0], f"the record at byte {start + spans[at][0]} is not a list of events"
        events.extend(payload)
    return events, start + pos, problem


def _payloads(data: bytes, spans: list[tuple[int, int]]) -> Iterator[list[list[Any]] | None]:
    """Yield each record's events (None for a record that is not a list of events), in order.

    The payloads are joined into one string and each is decoded where it starts (one parse call per
    record, no per-call set-up); a record the journal would not have written (whitespace, non-ASCII)
    takes json.loads, which decides.
    """
    payloads = [data[pos + HEADER.size : end] for pos, end in spans]
    try:
        text = ",".join(p.decode("ascii") for p in payloads)
    except UnicodeDecodeError:
        text = None
    offset = 0
    for payload in payloads:
        decoded: Any = None
        if text is not None:
            try:
                decoded, stop = _raw_decode(text, offset)
                if stop != offset + len(payload):
                    decoded = None
            except (ValueError, RecursionError):
                decoded = None
            offset += len(payload) + 1
        if decoded is None:
            try:
                decoded = json.loads(payload)
            except (ValueError, RecursionError):  # nested past the parser's depth: hand-made, never ours
                yield None
                return
        if not isinstance(decoded, list) or not all(isinstance(e, list) and len(e) in (6, 7) for e in decoded):
            yield None
            return
        yield decoded


_raw_decode = json.JSONDecoder().raw_decode


# -- the folder: orphans, damaged files, refusals ------------------------------------------------------


def open_orphan(folder: Path, name: str) -> Segment | None:
    """Open and lock a segment whose owner is gone; None when it is alive (locked) or already gone."""
    path = folder / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:  # a symlink (ELOOP) or anything else the journal never writes
        raise JournalDamaged(f"{name} cannot be opened as a segment: {err.strerror}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JournalDamaged(f"{name} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None  # its owner (or another adopter) holds it
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            os.close(fd)
            return None  # relayed and deleted by its owner just before we took the lock
        if (now.st_ino, now.st_dev) != (info.st_ino, info.st_dev):
            os.close(fd)
            return None
    except BaseException:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    return Segment(folder, name[: -len(SEGMENT_SUFFIX)], fd, info.st_size)


def set_aside(folder: Path, name: str, reason: str | None) -> None:
    """Move `name` into damaged/ (kept for inspection) and log why (unless `reason` is None); it is never read again."""
    target = folder / DAMAGED
    target.mkdir(exist_ok=True)
    try:
        os.replace(folder / name, target / f"{time.time_ns():016x}-{name}")
    except FileNotFoundError:
        return
    if reason is not None:
        logger.error("Set aside the trackable journal file %s: %s. It is kept in %s.", name, reason, target)


def scan(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (name, lstat) of the segment files of `folder`, oldest first; set aside what does not belong."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return
    present = {n[: -len(SEGMENT_SUFFIX)] for n in names if n.endswith(SEGMENT_SUFFIX)}
    for name in names:
        if name.startswith("."):
            _remove_if_stale(folder / name)  # left by a process that died between creating and renaming it
            continue
        if name in (DAMAGED, REFUSED_LOG, LEFT_OUT_LOG):
            continue
        try:
            info = os.lstat(folder / name)
        except FileNotFoundError:
            continue
        if _STATE_NAME.fullmatch(name) and stat.S_ISREG(info.st_mode):
            if name[: -len(STATE_SUFFIX)] not in present and time.time() - info.st_mtime > 60:
                _unlink(folder / name)  # the checkpoint of a segment deleted by a relay that died after
            continue
        if not _SEGMENT_NAME.fullmatch(name):
            set_aside(folder, name, "its name is not one the journal writes")
        elif not stat.S_ISREG(info.st_mode):
            set_aside(folder, name, "it is not a regular file")
        else:
            yield name, info


def damaged_count(folder: Path) -> int:
    """Return how many files were set aside in damaged/ (the checkpoints kept beside their segments aside)."""
    try:
        return sum(1 for name in os.listdir(folder / DAMAGED) if not name.endswith(STATE_SUFFIX))
    except FileNotFoundError:
        return 0


def record_refused(folder: Path, events: int) -> None:
    """Count `events` refused sends in refused.log."""
    record_events(folder, REFUSED_LOG, events)


def refused_count(folder: Path) -> int:
    """Return the events refused so far (refused.log)."""
    return logged_events(folder, REFUSED_LOG)


def record_events(folder: Path, log: str, events: int) -> None:
    """Add one line "<unix time> <events>" to the count file `log` (one small O_APPEND write: safe from many processes)."""
    fd = os.open(folder / log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | OPEN_FLAGS, 0o600)
    try:
        os.write(fd, f"{int(time.time())} {events}\n".encode())
    finally:
        os.close(fd)


def logged_events(folder: Path, log: str, max_bytes: int = 1024 * 1024) -> int:
    """Return the events counted so far in the count file `log` (its last `max_bytes` bytes)."""
    try:
        fd = os.open(folder / log, os.O_RDONLY | os.O_NONBLOCK | OPEN_FLAGS)
    except OSError:
        return 0
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0
        size = os.fstat(fd).st_size
        raw = os.pread(fd, max_bytes, max(0, size - max_bytes))
    finally:
        os.close(fd)
    total = 0
    for line in raw.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdecimal():
            total += int(parts[1])
    return total


def _remove_if_stale(path: Path) -> None:
    """Remove a hidden temporary file of the journal's own once it is older than HIDDEN_LIFETIME."""
    if not (path.name.endswith(NEW_SUFFIX) or path.name.endswith(".tmp")):
        return
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and time.time() - info.st_mtime > HIDDEN_LIFETIME:
        _unlink(path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
