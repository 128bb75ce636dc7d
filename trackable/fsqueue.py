"""A safer kombu filesystem:// transport: atomic writes, exact queue matching, corrupt files set aside.

Kombu's own transport writes a message file under its final name, so a consumer can read it half
written (kombu issue 1551) and then fails on every poll. Here a producer writes a hidden temporary
file and renames it into place, a consumer claims a file by renaming it (only one consumer wins),
and a file that is not a valid envelope is moved to a `corrupt/` folder and counted, not raised.

Only regular files are read: a file is opened with O_NOFOLLOW|O_NONBLOCK, checked with fstat and read
with a size bound, so a symlink (to /dev/zero, or to a file outside the folder), a FIFO, a device or a
folder named like a message never blocks the fold or exhausts its memory: it is set aside in `corrupt/`
(the link itself, never its target), counted and logged once.

A claimed file stays on disk until its message is acked: a message given back (channel closed before
the ack) is renamed to its old name, and the claimed files of a fold that died (its process is gone,
or it held them longer than the lease) are renamed back by the next listing of the folder.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps, object_hook

from trackable.redisqueue import ENVELOPE_ERRORS, LEASE, envelope_fields

__all__ = [
    "Channel",
    "FileMessage",
    "Transport",
    "NotAMessageFile",
    "read_message_file",
    "envelope_limit",
    "CORRUPT_FOLDER",
    "set_aside_count",
    "connection_options",
]

logger = logging.getLogger("trackable")

CORRUPT_FOLDER = "corrupt"
# kombu.utils.json.loads makes a decoder per call; this one is made once (the same object hook).
_loads = json.JSONDecoder(object_hook=object_hook).decode
# The fold's take reads only the envelope's strings and dicts, which need no object hook.
_plain_loads = json.JSONDecoder().decode
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class NotAMessageFile(OSError):
    """A queue entry that is not a regular file of a readable size (a link, a FIFO, a device, too big)."""


def envelope_limit() -> int:
    """Return the largest queue file read: room for a body of TRACKABLE_MAX_MESSAGE_BYTES escaped in JSON."""
    from trackable.conf import settings

    limit = settings.MAX_MESSAGE_BYTES
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 1024 * 1024
    return 8 * limit + 65536  # base64 or JSON escapes grow a body; kombu's headers add a little


def read_message_file(path: str, limit: int) -> bytes:
    """Return the bytes of the regular file `path`, never following a link nor blocking on a FIFO.

    Raise NotAMessageFile when it is not a regular file or is larger than `limit` bytes, and OSError
    (e.g. FileNotFoundError) when it cannot be opened at all.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        if os.path.islink(path):
            raise NotAMessageFile(f"a symbolic link is never followed ({os.readlink(path)[:200]!r})") from err
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotAMessageFile(f"not a regular file (mode {stat.filemode(info.st_mode)})")
        if info.st_size > limit:
            raise NotAMessageFile(f"{info.st_size} bytes, more than the {limit} bytes a queue file may hold")
        chunks, size = [], 0
        while size <= limit:
            want = min(1 << 20, limit + 1 - size)
            if size <= info.st_size:
                want = min(want, info.st_size + 1 - size)  # one byte more than fstat saw: a short read is the end
            chunk = os.read(fd, want)
            chunks.append(chunk)
            size += len(chunk)
            if len(chunk) < want:
                break
        if size > limit:  # it grew after the fstat
            raise NotAMessageFile(f"more than the {limit} bytes a queue file may hold")
        return b"".join(chunks)
    finally:
        os.close(fd)


def set_aside_count(folder: str | os.PathLike | None) -> int:
    """Return how many entries were set aside in the `corrupt/` folder of the filesystem:// queue `folder`."""
    if not folder:
        return 0
    try:
        return sum(1 for _ in os.scandir(os.path.join(folder, CORRUPT_FOLDER)))
    except OSError:
        return 0


class Channel(filesystem.Channel):
    """Filesystem channel with atomic publish and a cached, claimed-by-rename consume."""

    corrupt_files = 0

    #: An empty queue's folder is listed again at most this often (seconds).
    relist_interval = 0.05

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: dict[str, list[str]] = {}
        self._listed_at = float("-inf")
        self._claimed: dict[str, tuple[str, str]] = {}  # delivery tag → (claimed path, queue file name)
        self._no_ack_get = False
        self._no_ack_queues: set[str] = set()
        self._limit = 0  # envelope_limit() during a take (0: read it per message)
        self._decode = _loads  # the fold's take decodes without kombu's object hook
        self._file_thread: ThreadPoolExecutor | None = None  # the fold's claims and removals (see take_ahead)
        self._removals: list[Future[None]] = []

    def _put(self, queue, payload, **kwargs):  # type: ignore[override]  # kombu-stubs' own Channels disagree
        """Write `payload` under a hidden name, then rename it into `queue`'s place atomically."""
        # Wall-clock milliseconds (not monotonic) so files written by several hosts sort together.
        name = f"{time.time_ns() // 1_000_000:014d}_{uuid.uuid4().hex}.{queue}.msg"
        folder = self.data_folder_out
        tmp = os.path.join(folder, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(dumps(payload).encode("utf-8"))
        os.replace(tmp, os.path.join(folder, name))

    def _refill(self) -> None:
        """List the folder once and sort every queue's files, oldest last (pop() takes it)."""
        pending: dict[str, list[str]] = {}
        for name in os.listdir(self.data_folder_in):
            if name[0] == "." and name.endswith(".claimed"):
                name = self._reclaim(name)
            if name is None or name[0] == "." or not name.endswith(".msg"):
                continue
            stamp, dot, queue = name[:-4].partition(".")  # "<ms>_<uuid>.<queue>.msg"
            if dot and "_" in stamp:
                pending.setdefault(queue, []).append(name)
        for names in pending.values():
            names.sort(reverse=True)
        self._pending = pending
        self._listed_at = time.monotonic()

    def _candidates(self, queue: str) -> list[str]:
        pending = self._pending.get(queue)
        if not pending and time.monotonic() - self._listed_at >= self.relist_interval:
            self._refill()
            pending = self._pending.get(queue)
        return pending if pending is not None else []

    def _get(self, queue, timeout=None):
        folder = self.data_folder_in
        pending = self._candidates(queue)
        while pending:
            name = pending.pop()
            claimed = os.path.join(folder, f".{name}.{os.getpid()}.claimed")
            try:
                os.rename(os.path.join(folder, name), claimed)
            except OSError:
                continue  # another consumer claimed it first
            try:
                raw = read_message_file(claimed, self._limit or envelope_limit())
            except NotAMessageFile as err:
                self._set_aside(claimed, name, err)
                continue
            except OSError:
                continue
            try:
                payload = self._decode(raw.decode("utf-8"))
                if not isinstance(payload, dict) or "body" not in payload:
                    raise ValueError("not a kombu envelope")
                properties = payload.get("properties")
                if not isinstance(properties, dict) or not isinstance(properties.get("delivery_tag"), str):
                    raise ValueError("the envelope has no delivery tag")
            except (ValueError, UnicodeDecodeError, RecursionError) as err:
                self._set_aside(claimed, name, err)
                continue
            if self._no_ack_get or queue in self._no_ack_queues:
                os.remove(claimed)  # nothing will ack it: taken is done
            else:
                self._claimed[properties["delivery_tag"]] = (claimed, name)
            return payload
        raise Empty()

    def take(self, queues: list[str], limit: int, budget: int) -> list[FileMessage]:
        """Claim up to `limit` messages (bodies of about `budget` bytes) from `queues` in order, for the fold.

        Each is claimed, read and checked as a kombu consumer's get claims one (a file that is not a
        message is set aside); the fold acks them all with ack() once its batch committed, or gives
        them back with give_back(). Kombu's per-message machinery is skipped.
        """
        taken: list[FileMessage] = []
        self._limit, self._decode = envelope_limit(), _plain_loads
        try:
            self._take(queues, limit, budget, taken)
        finally:
            self._limit, self._decode = 0, _loads
        return taken

    def _take(self, queues: list[str], limit: int, budget: int, taken: list[FileMessage]) -> None:
        size = 0
        for queue in queues:
            while len(taken) < limit and size < budget:
                try:
                    payload = self._get(queue)
                except Empty:
                    break
                tag = payload["properties"]["delivery_tag"]
                try:
                    message = FileMessage(tag, payload, queue)
                except ENVELOPE_ERRORS as err:
                    entry = self._claimed.pop(tag, None)
                    if entry is not None:
                        self._set_aside(*entry, err)
                    continue
                taken.append(message)
                size += len(message.body)

    def take_ahead(self, queues: list[str], limit: int, budget: int) -> Future[list[FileMessage]]:
        """Run take() in the channel's file thread, after the removals asked for before; return its future.

        The fold claims its next batch this way while it commits the current one: the file system
        calls and the database's round trips both wait outside the interpreter's lock.
        """
        return self._files().submit(self.take, queues, limit, budget)

    def ack(self, tags: list[str]) -> None:
        """Remove the claimed files of taken messages (their batch committed), in the file thread.

        settle() waits for the removals; a removal that failed raises there or at the next ack (the
        file stays claimed, and is given back after the lease: the ledger drops the second copy).
        """
        claimed = [entry[0] for entry in (self._claimed.pop(tag, None) for tag in tags) if entry is not None]
        self._check_removals(wait=False)
        self._removals.append(self._files().submit(_remove_files, claimed))

    def settle(self) -> None:
        """Wait for the file thread's removals; raise the first error one of them met."""
        self._check_removals(wait=True)

    def _check_removals(self, wait: bool) -> None:
        finished = [r for r in self._removals if wait or r.done()]
        self._removals = [r for r in self._removals if r not in finished]
        for removal in finished:
            removal.result()  # waits (settle), or raises what a removal met

    def _files(self) -> ThreadPoolExecutor:
        if self._file_thread is None:
            self._file_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trackable-queue-files")
        return self._file_thread

    def close(self) -> None:
        """Finish the file thread's work, then close as kombu does."""
        if self._file_thread is not None:
            self._file_thread.shutdown(wait=True)
            self._file_thread = None
        super().close()

    def give_back(self, tags: list[str]) -> None:
        """Rename the claimed files of taken messages back to their queue names (their batch failed)."""
        for tag in tags:
            entry = self._claimed.pop(tag, None)
            if entry is not None:
                claimed, name = entry
                with contextlib.suppress(FileNotFoundError):
                    os.rename(claimed, os.path.join(self.data_folder_in, name))
        self._listed_at = float("-inf")

    def _reclaim(self, hidden: str) -> str | None:
        """Rename a claimed file back to its queue name if its fold is gone or over the lease; return that name."""
        name, _, pid = hidden[1 : -len(".claimed")].rpartition(".")
        if not pid.isdigit() or int(pid) == os.getpid():
            return None
        path = os.path.join(self.data_folder_in, hidden)
        try:
            if _alive(int(pid)) and time.time() - os.lstat(path).st_ctime < LEASE:
                return None
            os.rename(path, os.path.join(self.data_folder_in, name))
        except OSError:
            return None  # another consumer reclaimed it, or its fold acked it meanwhile
        logger.warning(
            "Queue file %s given back: the fold that claimed it (pid %s) is gone or held it over %gs", name, pid, LEASE
        )
        return name

    def basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs):
        """Consume from `queue`, remembering whether its messages are acked."""
        if no_ack:
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_get(self, queue, no_ack=False, **kwargs):
        """Get one message; with no_ack its file is removed at once."""
        self._no_ack_get = no_ack
        try:
            return super().basic_get(queue, no_ack=no_ack, **kwargs)
        finally:
            self._no_ack_get = False

    def basic_ack(self, delivery_tag, multiple=False):
        """Acknowledge the message and remove its claimed file."""
        super().basic_ack(delivery_tag, multiple=multiple)
        self._forget(delivery_tag)

    def basic_reject(self, delivery_tag, requeue=False):
        """Reject the message: give its file back (requeue) or remove it."""
        super().basic_reject(delivery_tag, requeue=requeue)
        if not requeue:
            self._forget(delivery_tag)

    def _forget(self, delivery_tag: str) -> None:
        claimed, _ = self._claimed.pop(delivery_tag, (None, None))
        if claimed is not None:
            _remove_files([claimed])

    def _restore(self, message):
        """Give an unacked message back by renaming its claimed file to its queue name."""
        entry = self._claimed.pop(message.delivery_tag, None)
        if entry is None:
            return super()._restore(message)
        claimed, name = entry
        with contextlib.suppress(FileNotFoundError):
            os.rename(claimed, os.path.join(self.data_folder_in, name))
        self._listed_at = float("-inf")

    def _set_aside(self, claimed: str, name: str, err: Exception) -> None:
        corrupt = os.path.join(self.data_folder_in, CORRUPT_FOLDER)
        os.makedirs(corrupt, exist_ok=True)
        os.replace(claimed, os.path.join(corrupt, name))  # moves a link itself, never its target
        type(self).corrupt_files += 1
        logger.error("Queue file %s is not a message and was moved to %s: %s", name, corrupt, err)

    def _size(self, queue):
        suffix = f".{queue}.msg"
        return sum(1 for n in os.listdir(self.data_folder_in) if n.endswith(suffix) and n[0] != ".")

    def _purge(self, queue):
        suffix = f".{queue}.msg"
        count = 0
        for n in os.listdir(self.data_folder_in):
            if n.endswith(suffix) and n[0] != ".":
                try:
                    os.remove(os.path.join(self.data_folder_in, n))
                    count += 1
                except OSError:
                    pass
        self._pending.pop(queue, None)
        self._listed_at = float("-inf")
        return count


class FileMessage:
    """One message the fold took from a queue file: what it reads of a kombu Message."""

    __slots__ = ("delivery_tag", "body", "content_type", "content_encoding", "headers", "delivery_info")

    def __init__(self, tag: str, payload: dict[str, Any], queue: str) -> None:
        self.body, self.content_type, self.content_encoding, self.headers = envelope_fields(payload)
        self.delivery_tag = tag
        self.delivery_info: dict[str, Any] = {"routing_key": queue}  # the queue its file was in


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        # Gone: given back to the queue after the lease; the ledger spots the second copy.
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _alive(pid: int) -> bool:
    """Return whether a process `pid` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Transport(filesystem.Transport):
    """The filesystem:// transport with the safer Channel."""

    Channel = Channel


def connection_options(user_options: dict[str, Any]) -> dict[str, Any]:
    """Return the transport options of the filesystem:// queue, its folders created.

    The folder is TRACKABLE_QUEUE_DIR (or kombu's ``data_folder_in``, or ``BASE_DIR/trackable-queue``);
    kombu's own ``data_folder_in``/``data_folder_out``/``control_folder`` options, when given, win.
    """
    from trackable.conf import settings
    from trackable.exceptions import TrackableConnectionError

    folder = settings.queue_dir
    if folder is None:
        raise TrackableConnectionError(
            "The filesystem:// broker needs a folder: set TRACKABLE_QUEUE_DIR (or kombu's data_folder_in and "
            "data_folder_out in TRACKABLE_BROKER_TRANSPORT_OPTIONS, or BASE_DIR) in your settings."
        )
    options: dict[str, Any] = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),  # kombu's default is ./control in the working directory
        "store_processed": False,
    }
    options.update(user_options)
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        Path(options[key]).mkdir(parents=True, exist_ok=True)
    return options
