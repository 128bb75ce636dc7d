"""Add increments to many rows in few statements: `n = n + delta`, never read-modify-write.

Rows whose deltas are all allowed by their columns go through one INSERT … ON CONFLICT DO UPDATE
(ON DUPLICATE KEY UPDATE on MySQL) per chunk. A positive counter cannot store a negative delta, not
even in the VALUES of an upsert (its CHECK constraint fires first), so rows that decrement one are
created if missing and then changed by one UPDATE … FROM (VALUES …) that stops at zero.
"""
from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ImproperlyConfigured
from django.db import DataError, models
from django.db.backends.base.base import BaseDatabaseWrapper

from trackable.fields import dimension_fields
from trackable.models import TrackableTimeSeriesData, model_field
from trackable.models import counter_fields as all_counter_fields

__all__ = ["upsert_increments", "CounterOverflow", "field_range"]

POSITIVE_TYPES = {"PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField"}
MAX_ROWS_PER_STATEMENT = 1000


class CounterOverflow(DataError):
    """A counter went beyond its field's range where the database would not refuse it itself (SQLite)."""


def field_range(internal_type: str) -> tuple[int, int]:
    """Return the (min, max) Django allows for an integer field type on every backend."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    return BaseDatabaseOperations.integer_field_ranges[internal_type]


def upsert_increments(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    totals: dict[tuple, dict[str, int]],
) -> int:
    """Add `totals` ({(ct_id, object_id[, bucket[, dimension values…]]): {field: delta}}) to `model`'s rows; return the row count.

    Rows are written in key order, so two workers folding overlapping keys lock them in the same order
    and cannot deadlock. Positive counter fields stop at zero instead of violating their constraint.
    """
    if not totals:
        return 0
    if connection.vendor not in {"postgresql", "sqlite", "mysql"}:
        raise ImproperlyConfigured(
            f"django-trackable has no upsert for the {connection.vendor} database; use PostgreSQL, SQLite or MySQL/MariaDB."
        )
    opts = model._meta
    key_fields = [model_field(model, "content_type"), model_field(model, "object_id")]
    if issubclass(model, TrackableTimeSeriesData):
        key_fields.append(model_field(model, "collected_during"))
        key_fields += dimension_fields(model)  # a breakdown's rows are keyed by their values too
    # Every counter is inserted (the columns have no database default); only touched ones are updated.
    counters = [model_field(model, name) for name in all_counter_fields(model)]
    positive = {f.attname for f in counters if f.get_internal_type() in POSITIVE_TYPES}
    plain: list[tuple[list, dict[str, int]]] = []
    lowering: list[tuple[list, dict[str, int]]] = []
    unnest = connection.vendor == "postgresql"
    try:
        ordered = sorted(totals)  # where the keys' types compare, the order _sort_key gives, at a fifth of its cost
    except TypeError:
        ordered = sorted(totals, key=_sort_key)
    for key in ordered:
        deltas = totals[key]
        lowers = any(d < 0 and n in positive for n, d in deltas.items())
        if unnest and not lowers:  # PostgreSQL adapts the validated Python values itself, in whole arrays
            keys = list(key[: len(key_fields)])
        else:
            keys = [f.get_db_prep_save(v, connection) for f, v in zip(key_fields, key, strict=False)]
        (lowering if lowers else plain).append((keys, deltas))
    writer = _Writer(connection, opts.db_table, key_fields, counters, positive)
    if plain and unnest:
        writer.upsert_unnest(plain)
    elif plain:
        writer.upsert(plain)
    if lowering:
        writer.insert_missing(lowering)
        writer.update_from_values(lowering)
    return len(plain) + len(lowering)


def _sort_key(key: tuple) -> tuple:
    """Order keys whose values differ in type (an int pk and a str pk): ints first, then by text."""
    return tuple((0, v) if isinstance(v, int) else (1, str(v)) for v in key)


class _Writer:
    """Build and run the vendor's statements for one data model table."""

    def __init__(self, connection, table, key_fields, counters, positive):
        self.connection = connection
        self.mysql = connection.vendor == "mysql"
        qn = connection.ops.quote_name
        self.table = qn(table)
        self.key_cols = [qn(f.column) for f in key_fields]
        self.counters = counters
        self.counter_cols = [qn(f.column) for f in counters]
        self.positive = positive
        self.key_fields = key_fields
        # SQLite stores any 64-bit integer in any integer column (and turns an overflow into a float), so
        # there the new values are read back and checked against the fields' ranges.
        self.check = connection.vendor == "sqlite"

    def _chunks(self, rows: list, ncols: int):
        max_params = self.connection.features.max_query_params or 65535
        size = max(1, min(MAX_ROWS_PER_STATEMENT, max_params // ncols))
        for start in range(0, len(rows), size):
            yield rows[start : start + size]

    def _execute(self, sql: str, params: list, touched: list | None = None) -> None:
        """Run `sql`; where self.check, read the `touched` (field, column) values back and check their range."""
        if not (self.check and touched):
            with self.connection.cursor() as cursor:
                cursor.execute(sql, params)
            return
        with self.connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING {', '.join(c for _, c in touched)}", params)
            for row in cursor.fetchall():
                for (f, _), value in zip(touched, row, strict=False):
                    self._check_range(f, value)

    @staticmethod
    def _check_range(f: models.Field, value: object) -> None:
        low, high = field_range(f.get_internal_type())
        if type(value) is not int or not low <= value <= high:
            raise CounterOverflow(
                f"{f.model.__name__}.{f.attname} would hold {value}, beyond {f.get_internal_type()}'s range {low} to {high}"
            )

    def _insert_head(self) -> str:
        return f"INSERT INTO {self.table} ({', '.join(self.key_cols + self.counter_cols)}) VALUES "

    def upsert(self, rows: list[tuple[list, dict[str, int]]]) -> None:
        pairs = [(f, c) for f, c in zip(self.counters, self.counter_cols, strict=False) if any(f.attname in d for _, d in rows)]
        touched = [c for _, c in pairs]
        if self.mysql:
            tail = " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = {c} + VALUES({c})" for c in touched)
        else:
            tail = (
                f" ON CONFLICT ({', '.join(self.key_cols)}) DO UPDATE SET "
                + ", ".join(f"{c} = {self.table}.{c} + EXCLUDED.{c}" for c in touched)
            )
        ncols = len(self.key_cols) + len(self.counters)
        placeholder = "(" + ", ".join(["%s"] * ncols) + ")"
        for chunk in self._chunks(rows, ncols):
            params = [v for keys, deltas in chunk for v in keys + [deltas.get(f.attname, 0) for f in self.counters]]
            self._execute(self._insert_head() + ", ".join([placeholder] * len(chunk)) + tail, params, pairs)

    def upsert_unnest(self, rows: list[tuple[list, dict[str, int]]]) -> None:
        """Upsert every row in one statement whose parameters are one array per column (PostgreSQL).

        A statement with one placeholder per value costs more to build and parse than to run; with
        arrays its text is the same for every batch and its parameters are a handful of lists.
        """
        touched = [c for f, c in zip(self.counters, self.counter_cols, strict=False) if any(f.attname in d for _, d in rows)]
        fields = self.key_fields + self.counters
        arrays = [f"%s::{f.db_type(self.connection)}[]" for f in fields]
        sql = (
            f"{self._insert_head().removesuffix(' VALUES ')} SELECT * FROM unnest({', '.join(arrays)})"
            f" ON CONFLICT ({', '.join(self.key_cols)}) DO UPDATE SET "
            + ", ".join(f"{c} = {self.table}.{c} + EXCLUDED.{c}" for c in touched)
        )
        columns = [list(col) for col in zip(*(keys for keys, _ in rows), strict=False)]
        columns += [[deltas.get(f.attname, 0) for _, deltas in rows] for f in self.counters]
        self._execute(sql, [_array_text(column) for column in columns])

    def insert_missing(self, rows: list[tuple[list, dict[str, int]]]) -> None:
        if self.mysql:
            tail = f" ON DUPLICATE KEY UPDATE {self.key_cols[0]} = {self.key_cols[0]}"
        else:
            tail = f" ON CONFLICT ({', '.join(self.key_cols)}) DO NOTHING"
        ncols = len(self.key_cols)
        placeholder = "(" + ", ".join(["%s"] * ncols + ["0"] * len(self.counters)) + ")"
        for chunk in self._chunks(rows, ncols):
            params = [v for keys, _ in chunk for v in keys]
            self._execute(self._insert_head() + ", ".join([placeholder] * len(chunk)) + tail, params)

    def update_from_values(self, rows: list[tuple[list, dict[str, int]]]) -> None:
        touched = [(f, c) for f, c in zip(self.counters, self.counter_cols, strict=False) if any(f.attname in d for _, d in rows)]
        nkeys = len(self.key_cols)
        ncols = nkeys + len(touched)
        v = [f"v.column{i + 1}" for i in range(ncols)]
        sets = []
        for i, (f, col) in enumerate(touched):
            total = (
                f"CAST({self.table}.{col} AS SIGNED) + {v[nkeys + i]}" if self.mysql else f"{self.table}.{col} + {v[nkeys + i]}"
            )
            clamp = f"CASE WHEN {total} < 0 THEN 0 ELSE {total} END" if f.attname in self.positive else total
            sets.append(f"{col} = {clamp}")
        match = " AND ".join(f"{self.table}.{k} = {v[i]}" for i, k in enumerate(self.key_cols))
        for chunk in self._chunks(rows, ncols):
            params = [x for keys, deltas in chunk for x in keys + [deltas.get(f.attname, 0) for f, _ in touched]]
            if self.mysql:
                selects = " UNION ALL ".join(
                    "SELECT " + ", ".join(f"%s AS column{i + 1}" for i in range(ncols)) for _ in chunk
                )
                sets_mysql = ", ".join(f"{self.table}.{s}" for s in sets)
                sql = f"UPDATE {self.table} JOIN ({selects}) AS v ON {match} SET {sets_mysql}"
            else:
                placeholder = "(" + ", ".join(["%s"] * ncols) + ")"
                values = ", ".join([placeholder] * len(chunk))
                sql = f"UPDATE {self.table} SET {', '.join(sets)} FROM (VALUES {values}) AS v WHERE {match}"
            self._execute(sql, params, touched)


def _array_text(values: list) -> list | str:
    """Return a column of ints or datetimes as the text of a PostgreSQL array, anything else as it is.

    Adapting a list element by element costs the client and the server more than the upsert itself
    (1,000 rows × 5 columns: 5.6 ms as lists, 2.1 ms as texts); strings, which would need quoting,
    stay lists for the driver to adapt.
    """
    if all(type(v) is int for v in values):
        return "{" + ",".join(map(str, values)) + "}"
    if all(type(v) is datetime for v in values):
        return "{" + ",".join(v.isoformat() for v in values) + "}"
    return values
