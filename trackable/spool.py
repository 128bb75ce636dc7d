"""A file-backed outbox on the web host: messages that could not be published during a broker outage.

Each message is one file (written to a hidden name, then renamed into place), replayed in order by a
background thread of the same process once the broker answers again, or by
``manage.py trackable_replay_spool``. A replayed message keeps its id, so if a replay is interrupted
after publishing but before the file is removed, the fold's ledger drops the second copy.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path

from trackable.conf import settings

__all__ = ["Spool", "get_spool", "ensure_replayer"]

logger = logging.getLogger("trackable")
SUFFIX = ".msg"


class Spool:
    """A folder of message bodies waiting for the broker."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def put(self, body: bytes, data_label: str) -> Path:
        """Keep one message body for `data_label`; return its file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}_{uuid.uuid4().hex}.{data_label}{SUFFIX}"
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
        final = self.folder / name
        os.replace(tmp, final)
        return final

    def pending(self) -> list[Path]:
        """Return the spooled files, oldest first."""
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(SUFFIX) and not n.startswith("."))
        except FileNotFoundError:
            return []
        return [self.folder / n for n in names]

    def __len__(self) -> int:
        return len(self.pending())

    def replay(self, limit: int | None = None) -> int:
        """Publish spooled messages oldest first; stop at the first failure; return how many were sent."""
        from trackable import transport
        from trackable.exceptions import TrackableConnectionError

        sent = 0
        for path in self.pending()[:limit]:
            claimed = path.with_name(f".{path.name}.{os.getpid()}.replaying")
            try:
                os.rename(path, claimed)  # another process replaying the same spool skips this file
            except OSError:
                continue
            data_label = path.name[: -len(SUFFIX)].split(".", 1)[1]
            try:
                transport.publish(claimed.read_bytes(), data_label)
            except TrackableConnectionError:
                os.rename(claimed, path)
                break
            claimed.unlink()
            sent += 1
        return sent


def get_spool() -> Spool | None:
    """Return the configured spool, or None when TRACKABLE_SPOOL_DIR is not set."""
    folder = settings.SPOOL_DIR
    return Spool(folder) if folder else None


_replayer_lock = threading.Lock()
_replayer: threading.Thread | None = None


def ensure_replayer() -> threading.Thread:
    """Start (once per process) the thread that replays the spool when the broker is back."""
    global _replayer
    with _replayer_lock:
        if _replayer is None or not _replayer.is_alive():
            _replayer = threading.Thread(target=_replay_until_empty, name="trackable-spool-replay", daemon=True)
            _replayer.start()
        return _replayer


def _replay_until_empty() -> None:
    delay = 0.5
    while True:
        spool = get_spool()
        if spool is None or not spool.pending():
            return
        sent = spool.replay()
        if sent:
            logger.warning("Replayed %d spooled tracking messages; %d left.", sent, len(spool))
            delay = 0.5
        else:
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
