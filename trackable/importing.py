"""Shared machinery of the import commands: sources, increment keys, chunked ledgered writes, progress.

Imports write straight to the database in chunks of TRACKABLE_IMPORT_CHUNK_LINES lines: one
transaction per chunk holds the `n = n + delta` upserts of the chunk and one ImportedChunk ledger row
naming the source and the chunk's line range. A second import of the same source finds those ranges and
skips their lines, so it adds nothing twice (and an interrupted import resumes where it stopped).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any, cast

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connections, models, router, transaction
from django.utils import timezone as dj_timezone

from trackable.buckets import bucket_start, get_zone
from trackable.cardinality import cap_values
from trackable.conf import settings
from trackable.exceptions import TrackableError
from trackable.fields import is_breakdown
from trackable.models import ImportedChunk, TrackableTimeSeriesData
from trackable.pklimits import INTEGER_RANGES
from trackable.sites import site
from trackable.sources import OVERLONG, OVERLONG_REASON, open_source
from trackable.upsert import upsert_increments

__all__ = [
    "ImportStats", "ImportConflict", "ImportWriteError", "KeyMaker", "ChunkWriter", "Progress", "Problem",
    "open_source", "Increment", "timestamp_problem", "amount_problem",
]

# Timestamps an import accepts (Unix ms): no bucket or zone arithmetic can overflow between them.
EARLIEST_MS = int(datetime(1900, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
LATEST_MS = int(datetime(9998, 12, 31, tzinfo=timezone.utc).timestamp() * 1000)

# A moment past the end of a bucket and before the end of the next one, from the bucket's start.
BUCKET_REACH = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(hours=25),
    "week": timedelta(days=7, hours=1),
    "month": timedelta(days=32),
}

# (data model, (content type id, object id, bucket start or None), counter field, amount)
Increment = tuple[type[models.Model], tuple, str, int]
# {data model: {row key: {counter: amount}}}
Totals = dict[type[models.Model], dict[tuple, dict[str, int]]]


def _empty_totals() -> Totals:
    return defaultdict(lambda: defaultdict(lambda: defaultdict(int)))


class ImportConflict(TrackableError):
    """Another import of the same source committed the same lines first."""


class ImportWriteError(TrackableError):
    """The database refused a chunk that passed every check of its lines."""


class Problem(str):
    """A reason to skip a line that points at bad data: the summary names the first such lines."""


def timestamp_problem(ts_ms: int) -> Problem | None:
    """Return why an event time cannot be counted (outside the years 1900–9998), or None."""
    if EARLIEST_MS <= ts_ms <= LATEST_MS:
        return None
    return Problem("timestamp outside the years 1900 to 9998")


def amount_problem(field: models.Field, amount: int) -> Problem | None:
    """Return why `amount` cannot be added to the counter `field` (beyond its column's range), or None."""
    high = INTEGER_RANGES.get(field.get_internal_type(), INTEGER_RANGES["BigIntegerField"])[1]
    if -high <= amount <= high:  # a negative amount is a decrement, also for a positive field
        return None
    return Problem(f"amount outside the range of the {field.get_internal_type()} counter {field.name}")


@dataclass
class ImportStats:
    """What an import did: counts a user can check against the source."""

    lines: int = 0  # lines (or source rows) read, including those already imported
    events: int = 0  # increments counted (each may carry an amount above one)
    amount: int = 0  # sum of the amounts counted
    rows: int = 0  # row upserts written (a row touched by two chunks counts twice)
    chunks: int = 0  # transactions committed
    already: int = 0  # lines skipped because an earlier import committed them
    broken: int = 0  # lines that could not be parsed
    skipped: Counter = field(default_factory=Counter)  # lines left out on purpose, by reason
    broken_examples: list[int] = field(default_factory=list)  # first few broken line numbers (1-based)
    problem_lines: dict[str, list[int]] = field(default_factory=dict)  # reason -> first few line numbers (1-based)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as a JSON-ready dict."""
        return {
            "lines": self.lines,
            "events": self.events,
            "amount": self.amount,
            "rows": self.rows,
            "chunks": self.chunks,
            "already_imported": self.already,
            "broken": self.broken,
            "broken_lines": self.broken_examples,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_lines": dict(sorted(self.problem_lines.items())),
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
        }

    def summary(self, unit: str = "lines") -> list[str]:
        """Return the human summary, one sentence per line."""
        verb = "Would count" if self.dry_run else "Counted"
        out = [
            f"Read {self.lines} {unit} in {self.seconds:.2f}s.",
            f"{verb} {self.events} events (total amount {self.amount}) into {self.rows} row updates in {self.chunks} chunks.",
        ]
        if self.already:
            out.append(f"Skipped {self.already} {unit} already imported by an earlier run.")
        for reason, n in sorted(self.skipped.items()):
            where = self.problem_lines.get(reason)
            out.append(f"Skipped {n} {unit}: {reason}" + (f" (first at {', '.join(map(str, where))})." if where else "."))
        if self.broken:
            first = ", ".join(map(str, self.broken_examples))
            out.append(f"Could not parse {self.broken} {unit} (first at {first}).")
        out.extend(f"Warning: {warning}" for warning in self.warnings)
        return out

    def add(self, other: ImportStats) -> None:
        """Add the counts of `other` (another file of the same import) to these."""
        for name in ("lines", "events", "amount", "rows", "chunks", "already", "broken", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.broken_examples.extend(other.broken_examples[: 5 - len(self.broken_examples)])
        for reason, lines in other.problem_lines.items():
            self.problem_lines.setdefault(reason, lines[:5])
        self.warnings.extend(w for w in other.warnings if w not in self.warnings)

    def skip(self, reason: str, lineno: int) -> None:
        """Count a line left out (0-based number); a Problem also keeps the first few line numbers."""
        self.skipped[reason] += 1
        if type(reason) is Problem:
            lines = self.problem_lines.setdefault(reason, [])
            if len(lines) < 5:
                lines.append(lineno + 1)

    def broke(self, lineno: int) -> None:
        """Count an unparsable line (0-based number)."""
        self.broken += 1
        if len(self.broken_examples) < 5:
            self.broken_examples.append(lineno + 1)


class PrimaryKeyProblem(ValueError):
    """A value that converts but that its column cannot hold; str(err) is the reason to skip the line."""


class KeyMaker:
    """Turn (parent, field, moment, amount) into increments, caching routes, content types and buckets."""

    def __init__(self) -> None:
        self.zone = get_zone(settings.time_zone)
        self._routes: dict[tuple, tuple] = {}
        self._buckets: dict[tuple[str, int], datetime] = {}
        self._last: dict[str, tuple[int, int, datetime]] = {}

    def route(self, model: type[models.Model], field_name: str, data_model: Any = None) -> tuple:
        """Return (data model, content type id, object_id field, pk limits) for `field_name` of `model`; raise if none."""
        key = (model, field_name, data_model)
        found = self._routes.get(key)
        if found is None:
            route = site.route(model, field_name, data_model)
            parent = apps.get_model(route.parent_label)
            ct_id = ContentType.objects.get_for_model(parent, for_concrete_model=False).pk
            oid_field = route.data_model._meta.get_field("object_id")
            found = self._routes[key] = (route.data_model, ct_id, oid_field, route.pk_limits)
        return found

    def bucket(self, data_model: type[models.Model], ts_ms: int) -> datetime | None:
        """Return the bucket start of `ts_ms` in `data_model`, or None if it keeps no time series."""
        granularity = getattr(data_model, "granularity", None)
        if granularity is None or not issubclass(data_model, TrackableTimeSeriesData):
            return None
        last = self._last.get(granularity)
        if last is not None and last[0] <= ts_ms < last[1]:  # logs are mostly in time order
            return last[2]
        key = (granularity, ts_ms // 60_000)
        start = self._buckets.get(key)
        if start is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            moment = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
            start = self._buckets[key] = bucket_start(moment, granularity, self.zone)
        end = bucket_start(start + BUCKET_REACH[granularity], granularity, self.zone)
        # Where a local hour is not an hour long (half-hour DST shifts), `end` is not the next start: no fast path.
        if end > start and bucket_start(end - timedelta(milliseconds=1), granularity, self.zone) == start:
            self._last[granularity] = (int(start.timestamp() * 1000), int(end.timestamp() * 1000), start)
        return start

    def target(self, model: type[models.Model], pk: Any, field_name: str, data_model: Any = None) -> tuple:
        """Return (data model, content type id, object id, field); raise ValueError (bad pk) or a registry error."""
        dm, ct_id, oid_field, limits = self.route(model, field_name, data_model)
        try:
            object_id = oid_field.to_python(pk)
        except (ValidationError, TypeError, OverflowError) as err:
            raise ValueError(f"{str(pk)[:80]!r} is not a primary key of {model.__name__}") from err
        problem = limits.problem(object_id, printable=True)  # checked before writing: the database would refuse the chunk
        if problem:
            raise PrimaryKeyProblem(f"primary key cannot be stored: {problem}")
        return dm, ct_id, object_id, field_name

    def targets(self, model: type[models.Model], pk: Any, field_name: str) -> list[tuple]:
        """Return (data model, content type id, object id, field, dimensions) of every data model counting `field_name`.

        The first is the field's data model, then each breakdown of `model` with that field; `dimensions`
        holds a breakdown's (name, source, max_length) and is empty for a plain data model.
        """
        key = (model, field_name, "all")
        routes = self._routes.get(key)
        if routes is None:
            routes = self._routes[key] = tuple(site.routes(model, field_name))
        out = []
        for route in routes:
            dm, ct_id, object_id, _ = self.target(model, pk, field_name, route.data_model)
            out.append((dm, ct_id, object_id, field_name, route.dimensions))
        return out

    def increment(
        self, model: type[models.Model], pk: Any, field_name: str, ts_ms: int, amount: int = 1, data_model: Any = None
    ) -> Increment:
        """Return the increment; raise ValueError (bad pk, amount or time) or a registry error (unknown field)."""
        dm, ct_id, object_id, _ = self.target(model, pk, field_name, data_model)
        problem = timestamp_problem(ts_ms) or amount_problem(dm._meta.get_field(field_name), amount)
        if problem:
            raise PrimaryKeyProblem(problem)
        return dm, (ct_id, object_id, self.bucket(dm, ts_ms)), field_name, amount


class ChunkWriter:
    """Accumulate increments by line and commit them chunk by chunk with a ledger row each."""

    def __init__(self, source: str | None, stats: ImportStats, *, chunk_size: int | None = None, dry_run: bool = False) -> None:
        self.source = source
        self.stats = stats
        self.chunk_size = chunk_size or settings.IMPORT_CHUNK_LINES
        self.dry_run = stats.dry_run = dry_run
        self.db = router.db_for_write(ImportedChunk)
        self.covered: list[tuple[int, int]] = []
        if source is not None:
            self.covered = sorted(ImportedChunk.objects.using(self.db).filter(source=source).values_list("start", "end"))
        self._cover_at = 0
        self._chunk: int | None = None
        self._first = 0
        self._last = -1
        self._events = 0
        self._totals = _empty_totals()

    def is_done(self, lineno: int) -> bool:
        """Return whether an earlier import committed line `lineno` (numbers must come in ascending order)."""
        covered = self.covered
        while self._cover_at < len(covered) and covered[self._cover_at][1] <= lineno:
            self._cover_at += 1
        if self._cover_at < len(covered) and covered[self._cover_at][0] <= lineno:
            self.stats.already += 1
            return True
        return False

    def all_done(self, start: int, end: int) -> bool:
        """Return whether earlier imports committed every line in [start, end) (no side effects)."""
        reached = start
        for first, last in self.covered:
            if first <= reached < last:
                reached = last
        return reached >= end

    def begin(self, lineno: int) -> None:
        """Start line `lineno`: commit the previous chunk if this line starts a new one."""
        chunk = lineno // self.chunk_size
        if chunk != self._chunk:
            self.flush()
            self._chunk, self._first = chunk, lineno
        self._last = lineno

    def consume(self, lines: Iterable[bytes], outcome_of: Any, progress: Progress, first: int = 0) -> None:
        """Import numbered lines; `outcome_of(line)` returns an Increment, a reason to skip, or None if broken."""
        stats, skipped = self.stats, self.stats.skipped
        for lineno, line in enumerate(lines, first):
            stats.lines += 1
            if self.is_done(lineno):
                continue
            self.begin(lineno)
            outcome = Problem(OVERLONG_REASON) if line is OVERLONG else outcome_of(line)
            if outcome is None:
                stats.broke(lineno)
            elif type(outcome) is str:
                skipped[outcome] += 1
            elif type(outcome) is Problem:
                stats.skip(outcome, lineno)
            elif type(outcome) is list:  # one line counted in a data model and its breakdowns: one event
                for i, increment in enumerate(outcome):
                    self.add(increment, counted=not i)
            else:
                self.add(cast(Increment, outcome))
            if not lineno & 0x3FFF:
                progress.update(stats)
        self.flush()

    def add(self, increment: Increment, counted: bool = True) -> None:
        """Count one increment of the current line (`counted`: as an event of its own, not a breakdown's copy)."""
        dm, key, field_name, amount = increment
        self._totals[dm][key][field_name] += amount
        if counted:
            self._events += 1
            self.stats.events += 1
            self.stats.amount += amount

    def flush(self) -> None:
        """Commit the current chunk (its increments and its ledger row) in one transaction."""
        if self._chunk is None:
            return
        totals, self._totals = self._totals, _empty_totals()
        first, end, events, self._chunk, self._events = self._first, self._last + 1, self._events, None, 0
        self.stats.chunks += 1
        if self.dry_run:
            self.stats.rows += sum(len(rows) for rows in totals.values())
            return
        try:
            with transaction.atomic(using=self.db):
                if self.source is not None:
                    ImportedChunk.objects.using(self.db).create(
                        source=self.source, start=first, end=end, events=events, imported_at=dj_timezone.now()
                    )
                for dm in sorted(totals, key=lambda m: m._meta.label_lower):
                    rows = totals[dm]
                    if is_breakdown(dm):  # the fold's cap on distinct values applies to imports too
                        rows = cap_values(connections[self.db], dm, rows)
                    self.stats.rows += upsert_increments(connections[self.db], dm, rows)
        except (DataError, OverflowError) as err:  # e.g. a sum of a chunk's amounts beyond a counter's range
            raise ImportWriteError(
                f"The database refused lines {first + 1}–{end}: {str(err).strip()}; nothing of these lines was written. "
                "Widen the counter field (e.g. a PositiveBigIntegerField) or split the amounts, then import again."
            ) from err
        except IntegrityError as err:
            raise ImportConflict(
                f"Another import of this source committed lines {first + 1}–{end} first; nothing of this chunk "
                "was written. Run the import again to add the lines still missing."
            ) from err


class Progress:
    """A one-line progress report, redrawn at most twice a second, only where someone watches."""

    def __init__(self, stream: IO[str] | None, label: str, unit: str = "lines") -> None:
        self.stream = stream
        self.label = label
        self.unit = unit
        self._next = 0.0

    def update(self, stats: ImportStats, *, force: bool = False) -> None:
        """Redraw the line if half a second passed since the last time."""
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + 0.5
        self.stream.write(
            f"\r{self.label}: {stats.lines:,} {self.unit}, {stats.events:,} events, "
            f"{stats.broken:,} broken, {stats.already:,} already imported"
        )
        self.stream.flush()

    def done(self, stats: ImportStats) -> None:
        """Draw the final state and end the line."""
        if self.stream is not None:
            self.update(stats, force=True)
            self.stream.write("\n")
            self.stream.flush()


def progress_stream(stream: Any, wanted: bool | None) -> IO[str] | None:
    """Return the stream to draw progress on: `stream` if wanted, or if None and it is a terminal."""
    target = getattr(stream, "_out", stream)  # Django's OutputWrapper
    if wanted is None:
        wanted = bool(getattr(target, "isatty", lambda: False)())
    return target if wanted else None
