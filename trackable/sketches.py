"""Distinct-count sketches of UniqueVisitors fields: build, union, estimate, and merge into rows.

The sketch is Apache DataSketches' HLL (``pip install django-trackable[uniques]``), HLL_6 registers,
``lg_k`` 12 by default: about ±2.6 % relative error at 95 % confidence (2 standard deviations) for one
sketch, ±3.2 % for a union of several (DataSketches' own bound, ``hll_sketch.get_rel_err``), exact
for small counts. HLL_6 rather than the smaller HLL_4: a year of dense daily sketches unions about
nine times faster (HLL_4 keeps an exceptions table that every deserialization rebuilds). Every estimate this app gives uses the union's (composite) estimator, so it
depends only on the sketch's contents, not on how many batches built it: ±3.2 % is the bound to quote. A row's sketch is its compact serialization: a few bytes per visitor while there are
few, at most ``2**lg_k * 3 / 4 + 40`` bytes (3 113 at lg_k 12).

Folding merges a batch's visitors into the rows *after* the counter upsert of the same transaction:
that upsert created every row and holds its lock (PostgreSQL, MySQL; SQLite writes one transaction at
a time), and the sketches are then read ``FOR UPDATE``, unioned and written back. A second worker
folding the same rows waits for the commit and unions onto the committed sketch, so no update is
lost; a union is idempotent, so a redelivered message (also guarded by the ledger) or a re-run rollup
cannot inflate a count.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q

from trackable.fields import DEFAULT_LG_K, unique_fields

__all__ = ["Estimate", "new_sketch", "union", "estimate", "relative_error", "merge_visits", "merge_sketches", "require"]

CONFIDENCE_STDDEVS = 2  # 95.4 % confidence bounds
ROWS_PER_QUERY = 200


class Estimate(NamedTuple):
    """A distinct count: the estimate and its 95 % confidence bounds (all rounded to whole visitors)."""

    estimate: int
    lower: int
    upper: int


def require() -> Any:
    """Return the datasketches module, or raise ImproperlyConfigured saying how to install it."""
    try:
        import datasketches
    except ImportError as err:
        raise ImproperlyConfigured(
            "UniqueVisitors fields need Apache DataSketches; pip install 'django-trackable[uniques]'."
        ) from err
    return datasketches


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


def merge_visits(connection: BaseDatabaseWrapper, model: type[models.Model], visits: dict[tuple, set[tuple[str, str]]]) -> int:
    """Union the visitors of a batch ({row key: {(counter, visitor hash)}}) into the rows; return rows changed.

    Call it inside the fold's transaction, after the counter upsert created the rows.
    """
    from trackable.models import TrackableTimeSeriesData

    fields = unique_fields(model)
    if not fields or not visits or not issubclass(model, TrackableTimeSeriesData):
        return 0  # trackable.E021 reports a UniqueVisitors field on a data model without buckets
    updates: dict[tuple, dict[str, Any]] = {}
    for key, pairs in visits.items():
        for field in fields:
            hashes = {visitor for counter, visitor in pairs if field.counts(counter)}
            if hashes:
                updates.setdefault(key, {})[field.attname] = new_sketch(hashes, field.lg_k)
    return merge_sketches(connection, model, updates)


def merge_sketches(connection: BaseDatabaseWrapper, model: type[models.Model], updates: dict[tuple, dict[str, Any]]) -> int:
    """Union sketches into existing rows ({(ct_id, object_id, bucket): {field: sketch or bytes}}); return rows changed.

    The rows are read FOR UPDATE (where the database has it) in key order, so concurrent merges queue
    up behind each other instead of overwriting each other.
    """
    if not updates:
        return 0
    lg_k = {f.attname: f.lg_k for f in unique_fields(model)}
    manager = model._default_manager.db_manager(connection.alias)
    keys = sorted(updates, key=lambda k: tuple(str(v) for v in k))
    changed = []
    for start in range(0, len(keys), ROWS_PER_QUERY):
        chunk = keys[start : start + ROWS_PER_QUERY]
        match = Q()
        for ct_id, object_id, bucket in chunk:
            match |= Q(content_type_id=ct_id, object_id=object_id, collected_during=bucket)
        rows = manager.filter(match).order_by("pk")
        if connection.features.has_select_for_update:
            rows = rows.select_for_update()
        for row in rows.only("pk", "content_type_id", "object_id", "collected_during", *lg_k):
            new = updates.get((row.content_type_id, row.object_id, row.collected_during))
            if new is None:
                continue
            for name, sketch in new.items():
                merged = union([getattr(row, name), sketch], lg_k[name])
                setattr(row, name, merged.serialize_compact())
            changed.append(row)
    if changed:
        manager.bulk_update(changed, list(lg_k), batch_size=ROWS_PER_QUERY)
    return len(changed)
