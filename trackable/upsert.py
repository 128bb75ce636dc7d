"""One SQL statement that adds increments to many rows: `n = n + delta`, never read-modify-write."""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from trackable.models import TrackableTimeSeriesData
from trackable.models import counter_fields as all_counter_fields

__all__ = ["upsert_increments"]

POSITIVE_TYPES = {"PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField"}
MAX_ROWS_PER_STATEMENT = 1000


def upsert_increments(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    totals: dict[tuple, dict[str, int]],
) -> int:
    """Add `totals` ({(ct_id, object_id, bucket): {field: delta}}) to `model`'s rows; return the row count.

    Rows are written in key order, so two workers folding overlapping keys lock them in the same order
    and cannot deadlock. Positive counter fields stop at zero instead of violating their constraint.
    """
    if not totals:
        return 0
    opts = model._meta
    timed = issubclass(model, TrackableTimeSeriesData)
    key_fields = [opts.get_field("content_type"), opts.get_field("object_id")]
    if timed:
        key_fields.append(opts.get_field("collected_during"))
    # Every counter is inserted (the columns have no database default); only touched ones are updated.
    counters = list(all_counter_fields(model))
    touched = {name for deltas in totals.values() for name in deltas}
    counter_fields = [opts.get_field(name) for name in counters]
    positive = [f.get_internal_type() in POSITIVE_TYPES for f in counter_fields]

    rows = []
    for key in sorted(totals, key=_sort_key):
        deltas = totals[key]
        values = [f.get_db_prep_save(v, connection) for f, v in zip(key_fields, key)]
        for name, pos in zip(counters, positive):
            delta = deltas.get(name, 0)
            values.append(max(delta, 0) if pos else delta)
        rows.append(values)

    ncols = len(key_fields) + len(counter_fields)
    max_params = connection.features.max_query_params or 65535
    per_statement = max(1, min(MAX_ROWS_PER_STATEMENT, max_params // ncols))
    updated = [(f, pos) for f, pos in zip(counter_fields, positive) if f.attname in touched]
    sql_head, sql_tail = _statement_parts(connection, opts.db_table, key_fields, counter_fields, updated)
    row_sql = "(" + ", ".join(["%s"] * ncols) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = sql_head + ", ".join([row_sql] * len(chunk)) + sql_tail
            cursor.execute(sql, [v for row in chunk for v in row])
    return len(rows)


def _sort_key(key: tuple) -> tuple:
    return tuple((0, v) if isinstance(v, int) else (1, str(v)) for v in key)


def _statement_parts(
    connection: BaseDatabaseWrapper,
    table: str,
    key_fields: list[models.Field],
    counter_fields: list[models.Field],
    updated: list[tuple[models.Field, bool]],
) -> tuple[str, str]:
    """Return the SQL before and after the VALUES rows for this database vendor."""
    qn = connection.ops.quote_name
    cols = [qn(f.column) for f in key_fields + counter_fields]
    head = f"INSERT INTO {qn(table)} ({', '.join(cols)}) VALUES "
    updates = []
    if connection.vendor == "mysql":
        for f, pos in updated:
            col = qn(f.column)
            total = f"CAST({col} AS SIGNED) + VALUES({col})"
            updates.append(f"{col} = " + (f"GREATEST({total}, 0)" if pos else total))
        return head, " ON DUPLICATE KEY UPDATE " + ", ".join(updates)
    if connection.vendor not in {"postgresql", "sqlite"}:
        raise ImproperlyConfigured(
            f"django-trackable has no upsert for the {connection.vendor} database; use PostgreSQL, SQLite or MySQL/MariaDB."
        )
    for f, pos in updated:
        col = qn(f.column)
        total = f"{qn(table)}.{col} + EXCLUDED.{col}"
        updates.append(f"{col} = " + (f"CASE WHEN {total} < 0 THEN 0 ELSE {total} END" if pos else total))
    conflict = ", ".join(qn(f.column) for f in key_fields)
    return head, f" ON CONFLICT ({conflict}) DO UPDATE SET " + ", ".join(updates)
