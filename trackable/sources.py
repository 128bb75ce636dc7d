"""Reading import sources with bounded memory: lines of at most MAX_LINE_BYTES, caches bounded in bytes.

A gzip of a few hundred kilobytes can hold a line of hundreds of megabytes; iterating a file by lines
would hold it whole (several times over while it is decoded). `bounded_lines` reads at most
MAX_LINE_BYTES at a time and yields the OVERLONG marker, in that line's place, for a longer line (its
rest is read and dropped in bounded pieces), so line numbers stay right and memory stays flat.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import sys
from collections.abc import Iterator
from typing import IO, Any, cast

__all__ = ["MAX_LINE_BYTES", "OVERLONG", "OVERLONG_REASON", "BoundedCache", "bounded_lines", "open_source"]

#: The longest line an import reads (a request target or a user agent is far shorter).
MAX_LINE_BYTES = 64 * 1024


class _Overlong(bytes):
    """The type of the OVERLONG marker (an empty bytes object that is recognised by identity)."""


OVERLONG = _Overlong(b"")
OVERLONG_REASON = f"line longer than {MAX_LINE_BYTES} bytes"


def bounded_lines(handle: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Yield the lines of `handle`, or OVERLONG for each line longer than `limit` bytes."""
    readline = handle.readline
    while True:
        line = readline(limit)
        if not line:
            return
        if len(line) < limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # drop the rest of the long line, piece by piece
            line = readline(limit)
        yield OVERLONG


class BoundedCache(dict):
    """A dict of bytes keys forgotten all at once when its entries or its keys' bytes pass a bound.

    Keys longer than `max_key` bytes are not cached at all (each is computed again: they are rare).
    """

    def __init__(self, max_entries: int = 200_000, max_bytes: int = 32 << 20, max_key: int = 4096) -> None:
        super().__init__()
        self.max_entries, self.max_bytes, self.max_key = max_entries, max_bytes, max_key
        self.bytes = 0

    def put(self, key: bytes, value: Any) -> Any:
        """Remember `value` under `key` (if the key is short enough) and return it."""
        if len(key) > self.max_key:
            return value
        if len(self) >= self.max_entries or self.bytes + len(key) > self.max_bytes:
            self.clear()
            self.bytes = 0
        self[key] = value
        self.bytes += len(key)
        return value


def open_source(path: str, identity_lines: int = 1) -> tuple[str, Iterator[bytes], IO[bytes]]:
    """Open a plain or gzip file (or "-" for stdin); return (identity digest, line iterator, handle).

    The identity is a digest of the first `identity_lines` lines, so a log keeps its identity when
    logrotate renames or compresses it, and a log that grew is still the same source. Lines come from
    `bounded_lines`: an over-long line is the OVERLONG marker.
    """
    raw: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed by the caller
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, raw))
    opened: io.BufferedIOBase = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == b"\x1f\x8b" else buffered
    handle = cast(IO[bytes], opened)  # a binary file object either way
    lines = bounded_lines(handle)
    head = [line for _, line in zip(range(identity_lines), lines, strict=False)]
    digest = hashlib.sha256(b"".join(b"\0" if line is OVERLONG else line for line in head)).hexdigest()[:48]

    def chained() -> Iterator[bytes]:
        yield from head
        yield from lines

    return digest, chained(), handle
