"""A safer kombu filesystem:// transport: atomic writes, exact queue matching, corrupt files set aside.

Kombu's own transport writes a message file under its final name, so a consumer can read it half
written (kombu issue 1551) and then fails on every poll. Here a producer writes a hidden temporary
file and renames it into place, a consumer claims a file by renaming it (only one consumer wins),
and a file that is not a valid envelope is moved to a `corrupt/` folder and counted, not raised.

Only regular files are read: a file is opened with O_NOFOLLOW|O_NONBLOCK, checked with fstat and read
with a size bound, so a symlink (to /dev/zero, or to a file outside the folder), a FIFO, a device or a
folder named like a message never blocks the fold or exhausts its memory: it is set aside in `corrupt/`
(the link itself, never its target), counted and logged once.
"""
from __future__ import annotations

import logging
import os
import stat
import time
import uuid

from queue import Empty

from kombu.transport import filesystem
from kombu.utils.json import dumps, loads

__all__ = ["Channel", "Transport", "NotAMessageFile", "read_message_file", "envelope_limit", "CORRUPT_FOLDER", "set_aside_count"]

logger = logging.getLogger("trackable")

CORRUPT_FOLDER = "corrupt"
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
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
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

    def _put(self, queue, payload, **kwargs):
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
            if name[0] == "." or not name.endswith(".msg"):
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

    def _get(self, queue):
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
                raw = read_message_file(claimed, envelope_limit())
            except NotAMessageFile as err:
                self._set_aside(claimed, name, err)
                continue
            except OSError:
                continue
            try:
                payload = loads(raw.decode("utf-8"))
                if not isinstance(payload, dict) or "body" not in payload:
                    raise ValueError("not a kombu envelope")
            except (ValueError, UnicodeDecodeError) as err:
                self._set_aside(claimed, name, err)
                continue
            os.remove(claimed)
            return payload
        raise Empty()

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


class Transport(filesystem.Transport):
    """The filesystem:// transport with the safer Channel."""

    Channel = Channel
