"""The shared skeleton of the file import commands (import_access_log, import_events)."""
from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trackable.exceptions import TrackableError
from trackable.importing import ChunkWriter, ImportStats, Progress, open_source, progress_stream

__all__ = ["ImportCommand"]


class ImportCommand(BaseCommand):
    """Import files one by one through the ledger, drawing progress and printing a summary per file."""

    kind = "file"  # prefix of the ledger's source names
    identity_lines = 1  # lines whose digest names a source in the ledger

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="FILE", help="Files (plain or .gz); - reads stdin.")
        parser.add_argument("--source-id", help="Name the source in the import ledger instead of a digest of its first lines.")
        parser.add_argument(
            "--chunk-lines", type=int, default=None, help="Lines per transaction (default TRACKABLE_IMPORT_CHUNK_LINES)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Read and count everything, write nothing.")
        parser.add_argument("--progress", action="store_true", default=None, help="Draw progress even when not on a terminal.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def import_paths(self, options: dict[str, Any], feed: Callable[[ChunkWriter, Iterator[bytes], Progress], None]) -> None:
        """Feed each file's lines to `feed` with a ledgered writer; print the summaries."""
        if options["chunk_lines"] is not None and options["chunk_lines"] < 1:
            raise CommandError(f"--chunk-lines must be a positive number of lines, not {options['chunk_lines']}.")
        progress = Progress(progress_stream(self.stderr, options["progress"]), self.__module__.rpartition(".")[2])
        total = ImportStats(dry_run=options["dry_run"])
        for path in options["paths"]:
            stats = self._import(path, options, feed, progress)
            total.add(stats)
            if not options["json"]:
                self.stdout.write(f"{'stdin' if path == '-' else path}:")
                for line in stats.summary():
                    self.stdout.write(f"  {line}")
        if options["json"]:
            self.stdout.write(json.dumps(total.as_dict(), sort_keys=True))

    def _import(self, path: str, options: dict[str, Any], feed: Callable, progress: Progress) -> ImportStats:
        started = time.monotonic()
        try:
            digest, lines, handle = open_source(path, self.identity_lines)
        except (zlib.error, EOFError) as err:
            raise CommandError(f"Cannot read {path}: it is not a valid gzip file ({err}).") from err
        except OSError as err:
            raise CommandError(f"Cannot read {path}: {err.strerror or err}.") from err
        named = options["source_id"]
        source = f"{self.kind}:" + (hashlib.sha256(named.encode()).hexdigest()[:48] if named else digest)
        stats = ImportStats()
        try:
            feed(ChunkWriter(source, stats, chunk_size=options["chunk_lines"], dry_run=options["dry_run"]), lines, progress)
        except zlib.error as err:
            raise CommandError(
                f"Import of {path} stopped: the gzip data is corrupt ({err}); the chunks before it were committed, so fix "
                "or truncate the file and import it again."
            ) from err
        except (TrackableError, EOFError, OSError) as err:
            raise CommandError(f"Import of {path} stopped: {err}") from err
        finally:
            progress.done(stats)
            if path != "-":
                handle.close()
        stats.seconds = time.monotonic() - started
        return stats
