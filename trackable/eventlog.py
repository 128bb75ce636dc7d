"""Turn the rows of a CSV event log into increments (manage.py import_events).

The first line is a header naming the columns: `timestamp` (ISO 8601, naive means the buckets' zone,
or Unix seconds), `object` ("app_label.Model:pk", or just the pk with --model), `field` (or --field)
and an optional `amount` (default 1). A column named like a Dimension field of a breakdown of the
object gives that dimension's value (e.g. `referrer`); other columns are ignored. One record per line.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from django.apps import apps
from django.db import models

from trackable.dimensions import normalise
from trackable.exceptions import TrackableError
from trackable.importing import (
    ChunkWriter,
    ImportStats,
    KeyMaker,
    PrimaryKeyProblem,
    Problem,
    Progress,
    timestamp_problem,
)

__all__ = ["EventImporter", "HeaderError", "parse_timestamp"]

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
NUL = Problem("a NUL character in the record")


class HeaderError(TrackableError, ValueError):
    """The CSV header lacks a column the import needs."""


def parse_timestamp(text: str, zone: Any) -> int:
    """Return Unix milliseconds of an ISO 8601 datetime (naive: in `zone`) or of Unix seconds."""
    text = text.strip()
    if _NUMBER.match(text):
        return int(float(text) * 1000)
    if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat() does not read the UTC designator
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1000)


class EventImporter:
    """Stream CSV records into a ChunkWriter."""

    def __init__(
        self, writer: ChunkWriter, header: str, *, model: type[models.Model] | None = None, field: str | None = None
    ) -> None:
        self.writer = writer
        self.stats: ImportStats = writer.stats
        self.model = model
        self.field = field
        self.keys = KeyMaker()
        header = header.lstrip("\ufeff")  # a UTF-8 byte order mark (spreadsheets write one) is not a column name
        names = [n.strip().lower() for n in next(csv.reader([header]), [])]
        required = ["timestamp", "object"] + ([] if field else ["field"])
        for name in required:
            if name not in names:
                fix = "" if name != "field" else " (or give --field)"
                raise HeaderError(
                    f"The CSV header has no {name!r} column{fix}; its first line must name the columns "
                    "timestamp, object, field and optionally amount."
                )
        self.at = {name: names.index(name) for name in ("timestamp", "object", "field", "amount") if name in names}
        self.extra = {name: i for i, name in enumerate(names) if name not in self.at}  # maybe dimension values
        self.width = max(self.at.values()) + 1
        self._models: dict[str, type[models.Model] | None] = {}

    def run(self, lines: Iterator[bytes], progress: Progress) -> None:
        """Import every record line after the header; count broken ones; commit chunk by chunk."""
        self.stats.lines += 1  # the header
        self.writer.consume(lines, self._record, progress, first=1)

    def _record(self, line: bytes) -> Any:
        """Return the increment of a record, why it is left out, or None if it is broken."""
        if not line.strip():
            return "empty line"
        if b"\0" in line:  # the database would refuse it in a pk; no field of a record needs one
            return NUL
        try:
            row = next(csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            return None
        if len(row) < self.width:
            return None
        at = self.at
        raw_amount = row[at["amount"]].strip() if "amount" in at else ""
        try:
            amount = int(raw_amount) if raw_amount else 1
            ts_ms = parse_timestamp(row[at["timestamp"]], self.keys.zone)
        except OverflowError:  # e.g. year 1 in a zone east of UTC
            return timestamp_problem(-(2**62))
        except ValueError:
            return None
        if amount == 0:
            return "amount is zero"
        model, pk = self._object(row[at["object"]].strip())
        if model is None:
            return None
        field = row[at["field"]].strip() if "field" in at else cast(str, self.field)  # one or the other (header)
        try:
            first = self.keys.increment(model, pk, field, ts_ms, amount)
            targets = self.keys.targets(model, pk, field)
            if len(targets) == 1 and not targets[0][4]:
                return first
            return [self._increment(target, ts_ms, amount, row) for target in targets]
        except PrimaryKeyProblem as err:  # a value its column cannot hold: skipped with its line number
            return Problem(str(err))
        except (ValueError, TrackableError):
            return None

    def _increment(self, target: tuple, ts_ms: int, amount: int, row: list[str]) -> tuple:
        """Return the increment of one record in one data model (a breakdown: keyed by the record's columns)."""
        dm, ct_id, object_id, field, specs = target
        key: tuple = (ct_id, object_id, self.keys.bucket(dm, ts_ms))
        for name, _, max_length in specs:
            at = self.extra.get(name)
            key += (normalise(row[at] if at is not None and at < len(row) else None, max_length),)
        return dm, key, field, amount

    def _object(self, text: str) -> tuple[type[models.Model] | None, str]:
        if self.model is not None:
            return (self.model, text) if text else (None, text)
        label, sep, pk = text.partition(":")
        if not sep or not pk:
            return None, text
        if label in self._models:
            return self._models[label], pk
        model: type[models.Model] | None
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            model = None
        self._models[label] = model
        return model, pk
