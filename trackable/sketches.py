"""Distinct-count sketches of UniqueVisitors fields: build, union, estimate, and merge into rows.

The sketch is Apache DataSketches' HLL (``pip install django-trackable[uniques]``), HLL_6 registers,
``lg_k`` 12 by default: about ±3.2 % relative error at 95 % confidence (2 standard deviations) for
merged sketches (DataSketches' own bound, ``hll_sketch.get_rel_err``), exact for small counts. Every
estimate this app gives uses the union's (composite) estimator, so it depends only on the sketch's
contents, never on how many batches built it: ±3.2 % is the bound to quote. HLL_6 rather than the
smaller HLL_4: a year of dense daily sketches unions about nine times faster (HLL_4 keeps an
exceptions table that every deserialization rebuilds). A row's sketch is its compact serialization:
4 bytes per visitor while there are few, at most ``2**lg_k * 3 / 4 + 40`` bytes (3 113 at lg_k 12).

Folding merges a batch's visitors into the rows in the transaction of its counters, and only reads a
sketch it holds the lock of. On PostgreSQL and SQLite (upsert_with_visits) one INSERT in key order
creates the missing rows with their counters and sketches and locks the existing ones without writing
them; their sketches are then read, unioned, and written with their counters by one UPDATE: one write
per row. Elsewhere (MySQL/MariaDB, a breakdown: merge_visits) the counter upsert creates and locks the
rows and the sketches are then read ``FOR UPDATE``, unioned and written back. Either way a second
worker folding the same rows waits for the commit and unions onto the committed sketch, so no update
is lost; a union is idempotent, so a redelivered message (also guarded by the ledger) or a re-run
rollup cannot inflate a count.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import timezone
from typing import Any, NamedTuple, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.dateparse import parse_datetime

from trackable.fields import DEFAULT_LG_K, unique_fields

__all__ = [
    "Estimate",
    "new_sketch",
    "union",
    "estimate",
    "relative_error",
    "merge_visits",
    "merge_sketches",
    "folds_in_one_pass",
    "upsert_with_visits",
    "binary_cursor",
    "require",
]

CONFIDENCE_STDDEVS = 2  # 95.4 % confidence bounds
ROWS_PER_QUERY = 200  # rows read per SELECT on databases other than PostgreSQL (SQLite's parameter limit)
PG_ROWS_PER_QUERY = 5000  # on PostgreSQL the keys travel as arrays: one query can take many


class Estimate(NamedTuple):
    """A distinct count: the estimate and its 95 % confidence bounds (all rounded to whole visitors)."""

    estimate: int
    lower: int
    upper: int


_module: Any = None


def require() -> Any:
    """Return the datasketches module, or raise ImproperlyConfigured saying how to install it."""
    global _module
    if _module is not None:
        return _module
    try:
        import datasketches

        _module = datasketches
    except ImportError as err:
        raise ImproperlyConfigured(
            "UniqueVisitors fields need Apache DataSketches; pip install 'django-trackable[uniques]'."
        ) from err
    return _module


def new_sketch(hashes: Iterable[str], lg_k: int = DEFAULT_LG_K) -> Any:
    """Return an HLL sketch of `hashes` (visitor hashes)."""
    ds = require()
    sketch = ds.hll_sketch(lg_k, ds.tgt_hll_type.HLL_6)
    for value in hashes:
        sketch.update(value)
    return sketch


def union(sketches: Iterable[Any], lg_k: int = DEFAULT_LG_K) -> Any:
    """Return the union of sketches given as objects or serialized bytes (None ones are skipped)."""
    ds = require()
    merged = ds.hll_union(lg_k)
    for sketch in sketches:
        if sketch is None:
            continue
        if isinstance(sketch, (bytes, bytearray, memoryview)):
            sketch = ds.hll_sketch.deserialize(bytes(sketch))
        merged.update(sketch)
    return merged.get_result(ds.tgt_hll_type.HLL_6)


def estimate(sketch: Any) -> Estimate:
    """Return the estimate of `sketch` (None: nobody) with its 95 % bounds.

    The estimate depends on the sketch's registers only, never on how they were merged: a sketch
    built in one go would otherwise use DataSketches' HIP estimator and one merged from several
    batches its composite one, so two folds of the same events could answer differently. A union of
    the sketch with itself always takes the composite estimator (hence the union error bound).
    """
    if sketch is None or sketch.is_empty():
        return Estimate(0, 0, 0)
    ds = require()
    merged = ds.hll_union(sketch.lg_config_k)
    merged.update(sketch)
    merged.update(sketch)
    sketch = merged.get_result(ds.tgt_hll_type.HLL_6)
    return Estimate(
        round(sketch.get_estimate()),
        round(sketch.get_lower_bound(CONFIDENCE_STDDEVS)),
        round(sketch.get_upper_bound(CONFIDENCE_STDDEVS)),
    )


def relative_error(lg_k: int = DEFAULT_LG_K, unioned: bool = True) -> float:
    """Return DataSketches' documented relative error at 95 % confidence for large counts (e.g. 0.032)."""
    return abs(require().hll_sketch.get_rel_err(True, unioned, lg_k, CONFIDENCE_STDDEVS))


def merge_visits(connection: BaseDatabaseWrapper, model: type[models.Model], visits: dict[tuple, dict[str, set[str]]]) -> int:
    """Union the visitors of a batch ({row key: {counter: visitor hashes}}) into the rows; return rows changed.

    Call it inside the fold's transaction, after the counter upsert created the rows (where the fold
    does not write both at once: see upsert_with_visits).
    """
    from trackable.models import TrackableTimeSeriesData

    fields = unique_fields(model)
    if not fields or not visits or not issubclass(model, TrackableTimeSeriesData):
        return 0  # trackable.E040 reports a UniqueVisitors field on a data model without buckets
    updates: dict[tuple, dict[str, Any]] = {}
    for key, sketches in _batch_sketches(fields, visits).items():
        updates[key] = {f.attname: s for f, s in zip(fields, sketches, strict=True) if s is not None}
    return merge_sketches(connection, model, updates)


def _batch_sketches(fields: tuple, visits: dict[tuple, dict[str, set[str]]]) -> dict[tuple, list[Any]]:
    """Return {row key: [a sketch of the batch's visitors, or None, per field]} for the keys some field counts."""
    out: dict[tuple, list[Any]] = {}
    for key, by_counter in visits.items():
        row: list[Any] = []
        for field in fields:
            sets = [hashes for counter, hashes in by_counter.items() if field.counts(counter)]
            if not sets:
                row.append(None)
                continue
            row.append(new_sketch(sets[0] if len(sets) == 1 else set().union(*sets), field.lg_k))
        if any(sketch is not None for sketch in row):
            out[key] = row
    return out


def merge_sketches(connection: BaseDatabaseWrapper, model: type[models.Model], updates: dict[tuple, dict[str, Any]]) -> int:
    """Union sketches into existing rows ({(ct_id, object_id, bucket): {field: sketch or bytes}}); return rows written.

    The rows are read FOR UPDATE (where the database has it) in primary key order, so concurrent
    merges queue up behind each other instead of overwriting each other; the unions are written back
    with one executemany.
    """
    if not updates:
        return 0
    fields = unique_fields(model)
    table = _Table(connection, model, fields)
    keys = sorted(updates, key=lambda k: tuple(str(v) for v in k))
    changed = []
    per_query = PG_ROWS_PER_QUERY if connection.vendor == "postgresql" else ROWS_PER_QUERY
    with binary_cursor(connection) as cursor:
        for start in range(0, len(keys), per_query):
            for pk, key, stored in table.locked_rows(cursor, keys[start : start + per_query]):
                new = updates.get(key)
                if new is None:
                    continue
                values = [_merged(old, new.get(f.attname), f.lg_k) for f, old in zip(fields, stored, strict=False)]
                if values != stored:  # a dense sketch mostly stays the same: then the row is not written again
                    changed.append([*values, pk])
        table.write(cursor, changed)
    return len(changed)


def folds_in_one_pass(connection: BaseDatabaseWrapper, model: type[models.Model]) -> bool:
    """Return whether the fold writes `model`'s counters and sketches together (upsert_with_visits).

    PostgreSQL and SQLite; a time series data model without Dimension fields. Elsewhere (MySQL/MariaDB,
    a breakdown) the counters are upserted first and the sketches merged after (merge_visits).
    """
    from trackable.fields import is_breakdown
    from trackable.models import TrackableTimeSeriesData

    return (
        connection.vendor in {"postgresql", "sqlite"}
        and issubclass(model, TrackableTimeSeriesData)
        and not is_breakdown(model)
        and bool(unique_fields(model))
    )


def upsert_with_visits(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    totals: dict[tuple, dict[str, int]],
    visits: dict[tuple, dict[str, set[str]]],
) -> int:
    """Add `totals` to `model`'s rows and union `visits` into their sketches, writing each row once; return the row count.

    `totals` and `visits` as for upsert_increments and merge_visits; only where folds_in_one_pass. Three
    statements:

    1. One INSERT of every key, in key order, with its counters and the batch's sketches: a missing
       row is created with its final values. An existing one is only locked (PostgreSQL: ON CONFLICT
       DO UPDATE … WHERE false locks the row and writes nothing; SQLite writes one transaction at a
       time). Every row lock of the batch is taken here, in key order, as upsert_increments takes them,
       so concurrent folds cannot deadlock.
    2. The sketches of the rows that existed are read. Pass 1 holds their locks until the commit, so
       no other fold can change them between this read and the write.
    3. One UPDATE writes those rows: counters + deltas and, where the union changed it, the sketch
       (a dense sketch that already holds the batch's visitors is not sent again).
    """
    from trackable.upsert import _sort_key

    fields = unique_fields(model)
    fresh = _batch_sketches(fields, visits)
    table = _OnePass(connection, model, fields)
    keys = sorted(totals, key=_sort_key)
    with binary_cursor(connection) as cursor:
        inserted = table.insert(cursor, keys, totals, fresh)
        rest = [key for i, key in enumerate(keys) if i not in inserted]
        if rest:
            stored = table.read(cursor, rest)
            changes = []
            for key, (pk, old) in zip(rest, stored, strict=True):
                new = fresh.get(key)
                values: list[Any] = [None] * len(fields)
                if new is not None:
                    for i, field in enumerate(fields):
                        merged = _merged(old[i], new[i], field.lg_k)
                        if merged != old[i]:  # a dense sketch mostly stays the same: then it is not written
                            values[i] = merged
                changes.append((pk, totals[key], values))
            table.update(cursor, changes)
    return len(keys)


@contextlib.contextmanager
def binary_cursor(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """Yield a Django cursor; on PostgreSQL with psycopg 3, one that moves bytes in the binary format.

    Django's own cursors bind parameters on the client and read results as text: each sketch then
    travels as hex, twice its size, quoted into the SQL or decoded from it. This cursor binds on the
    server and reads binary results (a sketch is sent and received as its bytes), and still goes
    through Django's wrapper: query logging, execute wrappers, database error translation.
    """
    raw = None
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if is_psycopg3:
            import psycopg

            connection.ensure_connection()
            raw = psycopg.Cursor(connection.connection)  # prepares statements only if OPTIONS["prepare_threshold"] says so
            raw.format = psycopg.pq.Format.BINARY
    if raw is None:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.validate_thread_sharing()
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(cast(Any, raw)) as cursor:  # the stubs expect a wrapper; Django passes the driver cursor
        yield cursor


def _merged(old: Any, new: Any, lg_k: int) -> Any:
    """Return the serialized union of a stored sketch and a new one (either may be missing)."""
    if new is None:
        return old
    if old is None and not isinstance(new, (bytes, bytearray, memoryview)):
        return new.serialize_compact()  # a new row: nothing to union with
    return union([old, new], lg_k).serialize_compact()


class _Table:
    """The SQL of reading and writing the sketches of one data model's rows."""

    def __init__(self, connection: BaseDatabaseWrapper, model: type[models.Model], fields: tuple) -> None:
        from trackable.models import model_field

        self.connection = connection
        qn = connection.ops.quote_name
        opts = model._meta
        self.table = qn(opts.db_table)
        self.pk = qn(opts.pk.column)
        self.key_fields = [model_field(model, n) for n in ("content_type", "object_id", "collected_during")]
        self.key_cols = [f"{self.table}.{qn(cast(str, f.column))}" for f in self.key_fields]
        self.sketch_cols = [qn(cast(str, f.column)) for f in fields]  # concrete fields: never None

    def locked_rows(self, cursor: Any, keys: list[tuple]) -> list[tuple[Any, tuple, list]]:
        """Return (pk, key, [sketch bytes or None]) of the rows of `keys`, locked for this transaction."""
        connection = self.connection
        head = f"SELECT {self.table}.{self.pk}, {', '.join(self.key_cols + self.sketch_cols)} FROM {self.table}"
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in self.key_fields)
            match = " AND ".join(f"{col} = k.c{i}" for i, col in enumerate(self.key_cols))
            sql = f"{head} JOIN unnest({arrays}) AS k(c0, c1, c2) ON {match} ORDER BY 1{lock}"
            params: list[Any] = [list(column) for column in zip(*keys, strict=False)]
        else:
            rows = ", ".join(["(%s, %s, %s)"] * len(keys))
            values = f"VALUES {rows}" if connection.vendor == "sqlite" else rows
            sql = f"{head} WHERE ({', '.join(self.key_cols)}) IN ({values}) ORDER BY 1{lock}"
            params = [f.get_db_prep_value(v, connection) for key in keys for f, v in zip(self.key_fields, key, strict=False)]
        cursor.execute(sql, params)
        return [(row[0], self._key(row[1:4]), list(row[4:])) for row in cursor.fetchall()]

    def _key(self, raw: tuple) -> tuple:
        """Return a row's key as the fold spells it: ints, the object_id's Python type, an aware UTC datetime."""
        ct_id, object_id, bucket = raw
        if isinstance(bucket, str):
            bucket = parse_datetime(bucket)
        if bucket.tzinfo is None:
            bucket = bucket.replace(tzinfo=timezone.utc)
        return int(ct_id), self.key_fields[1].to_python(object_id), bucket

    def write(self, cursor: Any, rows: list[list[Any]]) -> None:
        """Write back [sketch bytes..., pk] rows."""
        if not rows:
            return
        if self.connection.vendor == "postgresql":  # one statement, one array per column
            names = [f"s{i}" for i in range(len(self.sketch_cols))]
            sets = ", ".join(f"{col} = v.{name}" for col, name in zip(self.sketch_cols, names, strict=False))
            arrays = ", ".join(["%s::bytea[]"] * len(names) + ["%s::bigint[]"])
            sql = (
                f"UPDATE {self.table} SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}, pk) "
                f"WHERE {self.table}.{self.pk} = v.pk"
            )
            cursor.execute(sql, [list(column) for column in zip(*rows, strict=False)])
        else:
            sets = ", ".join(f"{col} = %s" for col in self.sketch_cols)
            cursor.executemany(f"UPDATE {self.table} SET {sets} WHERE {self.pk} = %s", rows)


class _OnePass:
    """The SQL of upsert_with_visits for one data model table.

    On PostgreSQL each column travels as one array in the binary format (``%b``): a text array of a
    batch's keys and sketches costs about five times as much to build (bytea as escaped hex).
    """

    def __init__(self, connection: BaseDatabaseWrapper, model: type[models.Model], fields: tuple) -> None:
        from trackable.models import counter_fields, model_field
        from trackable.upsert import POSITIVE_TYPES

        self.connection = connection
        self.pg = connection.vendor == "postgresql"
        qn = connection.ops.quote_name
        opts = model._meta
        self.table = qn(opts.db_table)
        self.pk = qn(opts.pk.column)
        self.pk_type = opts.pk.rel_db_type(connection)
        self.key_fields = [model_field(model, n) for n in ("content_type", "object_id", "collected_during")]
        self.key_cols = [qn(cast(str, f.column)) for f in self.key_fields]
        self.counters = [model_field(model, n) for n in counter_fields(model)]
        self.counter_cols = [qn(cast(str, f.column)) for f in self.counters]
        self.positive = {f.attname for f in self.counters if f.get_internal_type() in POSITIVE_TYPES}
        self.sketch_cols = [qn(cast(str, f.column)) for f in fields]

    def _rows_per_statement(self, ncols: int) -> int:
        from trackable.upsert import MAX_ROWS_PER_STATEMENT

        max_params = self.connection.features.max_query_params or 65535
        return max(1, min(MAX_ROWS_PER_STATEMENT, max_params // ncols))

    def _touched(self, deltas: Iterable[dict[str, int]]) -> list[int]:
        """Return the indexes of the counters some row changes."""
        names = set().union(*deltas)
        return [i for i, f in enumerate(self.counters) if f.attname in names]

    def _check(self, touched: list[int], rows: list[tuple]) -> None:
        """On SQLite, check the counters' new values against their fields' ranges (it stores any integer)."""
        from trackable.upsert import _Writer

        for row in rows:
            for i, value in zip(touched, row, strict=True):
                _Writer._check_range(self.counters[i], value)

    def insert(self, cursor: Any, keys: list[tuple], totals: dict, fresh: dict) -> set[int]:
        """Pass 1: create the missing rows with their final values, lock the others; return the indexes inserted."""
        counters, positive = self.counters, self.positive
        nsketches = len(self.sketch_cols)
        touched = self._touched(totals[key] for key in keys)
        columns = ", ".join(self.key_cols + self.counter_cols + self.sketch_cols)
        returning = ", ".join(self.key_cols + [self.counter_cols[i] for i in touched])
        values = []
        for key in keys:
            deltas = totals[key]
            # A positive counter's negative delta cannot even be proposed (its CHECK fires): a new row holds 0.
            row = [
                max(d, 0) if f.attname in positive else d for f in counters for d in (deltas.get(f.attname, 0),)
            ]
            new = fresh.get(key)
            sketches = [None if s is None else s.serialize_compact() for s in new] if new else [None] * nsketches
            values.append((key, row, sketches))
        if self.pg:
            fields = self.key_fields + counters
            arrays = [f"%b::{f.db_type(self.connection)}[]" for f in fields] + ["%b::bytea[]"] * nsketches
            first = self.key_cols[0]
            sql = (
                f"INSERT INTO {self.table} ({columns}) SELECT * FROM unnest({', '.join(arrays)})"
                f" ON CONFLICT ({', '.join(self.key_cols)}) DO UPDATE SET {first} = EXCLUDED.{first} WHERE false"
                f" RETURNING {returning}"
            )
            params = [list(c) for c in zip(*(list(key) + row + sketches for key, row, sketches in values), strict=True)]
            cursor.execute(sql, params)
            returned = cursor.fetchall()
        else:
            connection = self.connection
            prepped = [
                tuple(f.get_db_prep_save(v, connection) for f, v in zip(self.key_fields, key, strict=True))
                for key, _, _ in values
            ]
            ncols = len(self.key_cols) + len(counters) + nsketches
            placeholder = "(" + ", ".join(["%s"] * ncols) + ")"
            size = self._rows_per_statement(ncols)
            returned = []
            for start in range(0, len(values), size):
                chunk = range(start, min(start + size, len(values)))
                sql = (
                    f"INSERT INTO {self.table} ({columns}) VALUES {', '.join([placeholder] * len(chunk))}"
                    f" ON CONFLICT ({', '.join(self.key_cols)}) DO NOTHING RETURNING {returning}"
                )
                cursor.execute(sql, [v for i in chunk for v in (*prepped[i], *values[i][1], *values[i][2])])
                returned += cursor.fetchall()
            self._check(touched, [row[3:] for row in returned])
        index = {key: i for i, key in enumerate(keys)}
        inserted = set()
        for row in returned:
            i = index.get(self._key(row))
            if i is None:
                raise RuntimeError(f"{self.table}: the row {tuple(row[:3])!r} inserted by a fold matches none of its keys")
            inserted.add(i)
        return inserted

    def _key(self, row: tuple) -> tuple:
        """Return the key of a returned row as the fold spells it: ints, the object_id's Python type, an aware datetime."""
        ct_id, object_id, bucket = row[:3]
        if type(object_id) is not int:
            object_id = self.key_fields[1].to_python(object_id)
        if isinstance(bucket, str):
            bucket = parse_datetime(bucket)
        if bucket is not None and bucket.tzinfo is None:
            bucket = bucket.replace(tzinfo=timezone.utc)
        return int(ct_id), object_id, bucket

    def read(self, cursor: Any, keys: list[tuple]) -> list[tuple[Any, list]]:
        """Pass 2: return (pk, [sketch bytes or None]) of the existing rows of `keys`, in their order."""
        connection = self.connection
        found: list[Any] = [None] * len(keys)
        sketch_cols = ", ".join(f"t.{col}" for col in self.sketch_cols)
        if self.pg:
            arrays = ", ".join(f"%b::{f.db_type(connection)}[]" for f in self.key_fields)
            match = " AND ".join(f"t.{col} = k.c{i}" for i, col in enumerate(self.key_cols))
            sql = (
                f"SELECT k.n, t.{self.pk}, {sketch_cols} FROM unnest({arrays}) WITH ORDINALITY AS k(c0, c1, c2, n)"
                f" JOIN {self.table} AS t ON {match}"
            )
            cursor.execute(sql, [list(c) for c in zip(*keys, strict=True)])
            rows = [(n - 1, *rest) for n, *rest in cursor.fetchall()]
        else:
            match = " AND ".join(f"t.{col} = v.column{i + 1}" for i, col in enumerate(self.key_cols))
            rows = []
            for start in range(0, len(keys), ROWS_PER_QUERY):
                chunk = keys[start : start + ROWS_PER_QUERY]
                values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
                sql = (
                    f"SELECT v.column4, t.{self.pk}, {sketch_cols} FROM (VALUES {values}) AS v"
                    f" JOIN {self.table} AS t ON {match}"
                )
                params = [
                    p
                    for n, key in enumerate(chunk, start)
                    for p in (*(f.get_db_prep_value(v, connection) for f, v in zip(self.key_fields, key, strict=True)), n)
                ]
                cursor.execute(sql, params)
                rows += cursor.fetchall()
        for n, pk, *sketches in rows:
            found[n] = (pk, [None if s is None else bytes(s) for s in sketches])
        if None in found:  # pass 1 found these rows and holds their locks: nobody can have deleted one
            raise RuntimeError(f"{self.table}: a row locked by a fold is gone before its sketches were read")
        return found

    def update(self, cursor: Any, changes: list[tuple[Any, dict[str, int], list]]) -> None:
        """Pass 3: add the deltas to the existing rows and write the sketches that changed."""
        table = self.table
        touched = self._touched(deltas for _, deltas, _ in changes)
        written = [i for i in range(len(self.sketch_cols)) if any(v[i] is not None for _, _, v in changes)]
        sets = []
        for n, i in enumerate(touched):
            f, col = self.counters[i], self.counter_cols[i]
            total = f"{table}.{col} + v.d{n}"
            lowers = f.attname in self.positive and any(d.get(f.attname, 0) < 0 for _, d, _ in changes)
            sets.append(f"{col} = CASE WHEN {total} < 0 THEN 0 ELSE {total} END" if lowers else f"{col} = {total}")
        sets += [f"{self.sketch_cols[i]} = COALESCE(v.s{n}, {table}.{self.sketch_cols[i]})" for n, i in enumerate(written)]
        names = ["pk", *(f"d{n}" for n in range(len(touched))), *(f"s{n}" for n in range(len(written)))]
        rows = [
            [pk, *(deltas.get(self.counters[i].attname, 0) for i in touched), *(values[i] for i in written)]
            for pk, deltas, values in changes
        ]
        if self.pg:
            types = [self.pk_type, *(self.counters[i].db_type(self.connection) for i in touched)] + ["bytea"] * len(written)
            arrays = ", ".join(f"%b::{t}[]" for t in types)
            sql = (
                f"UPDATE {table} SET {', '.join(sets)} FROM unnest({arrays}) AS v({', '.join(names)})"
                f" WHERE {table}.{self.pk} = v.pk"
            )
            cursor.execute(sql, [list(c) for c in zip(*rows, strict=True)])
            return
        select = ", ".join(f"column{i + 1} AS {name}" for i, name in enumerate(names))
        returning = ", ".join(self.counter_cols[i] for i in touched) or f"{table}.{self.pk}"
        placeholder = "(" + ", ".join(["%s"] * len(names)) + ")"
        size = self._rows_per_statement(len(names))
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            values = ", ".join([placeholder] * len(chunk))
            sql = (
                f"UPDATE {table} SET {', '.join(sets)} FROM (SELECT {select} FROM (VALUES {values}))"
                f" AS v WHERE {table}.{self.pk} = v.pk RETURNING {returning}"
            )
            cursor.execute(sql, [p for row in chunk for p in row])
            if touched:
                self._check(touched, cursor.fetchall())
