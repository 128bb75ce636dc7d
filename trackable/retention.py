"""Retention: roll fine buckets into coarser ones after a while, delete what is too old.

A rollup moves counts, it never copies them: in one transaction per batch it adds a batch of old rows'
counters to their coarser bucket (in another data model, or in the bucket-aligned row of the same one)
with `n = n + delta` upserts, subtracts the same amounts from the old rows, and deletes the old rows
that are then all zero. UniqueVisitors sketches are unioned into the coarser row (trackable.sketches);
a union is idempotent, so an old row kept by a concurrent fold is simply unioned again next run. A fold
that increments an old row meanwhile is never lost: its delta is what remains in the row after the
subtraction, so the row stays and the next run rolls it up. Totals over any range of whole coarse
buckets are the same before, during and after a rollup. A breakdown's rows roll up per value of their
dimensions (into the same breakdown, or into one with the same Dimension fields), and a coarse bucket
keeps the target's limit of distinct values per dimension like a folded one: the smaller values beyond
it are counted under "(other)" (trackable.cardinality).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone as dj_timezone

from trackable.buckets import DAY, GRANULARITIES, HOUR, MINUTE, MONTH, WEEK, bucket_start, get_zone
from trackable.conf import settings
from trackable.fields import dimension_fields, unique_fields
from trackable.models import TrackableTimeSeriesData, counter_fields, time_series
from trackable.sites import site
from trackable.upsert import POSITIVE_TYPES, upsert_increments

__all__ = ["Policy", "TrimResult", "parse_policies", "policy_from", "trim"]

#: The clock trim() reads when no `now` is given; tests replace it, so no result depends on today's date.
clock = dj_timezone.now

# Coarser granularities whose bucket boundaries are also boundaries of the finer one.
COARSER = {MINUTE: (HOUR, DAY, WEEK, MONTH), HOUR: (DAY, WEEK, MONTH), DAY: (WEEK, MONTH), WEEK: (), MONTH: ()}
KEYS = {"rollup_after_days", "rollup_to", "delete_after_days"}


@dataclass
class Policy:
    """What happens to the old rows of one time series data model."""

    data_model: type[models.Model]
    rollup_after: timedelta | None = None
    rollup_to: type[models.Model] | None = None  # the target data model (maybe data_model itself)
    granularity: str | None = None  # the target granularity
    delete_after: timedelta | None = None

    def rollup(self) -> tuple[type[models.Model], str]:
        """Return (target data model, granularity) of a policy that rolls up (rollup_after is set)."""
        if self.rollup_to is None or self.granularity is None:
            raise ValueError(f"The retention policy of {self.data_model._meta.label} does not roll up.")
        return self.rollup_to, self.granularity


@dataclass
class TrimResult:
    """What a trim did to one data model."""

    data_model: str
    rolled_rows: int = 0  # old rows whose counts moved into coarser buckets
    target_rows: int = 0  # coarser rows incremented (summed over batches)
    deleted_rows: int = 0  # rows deleted for being older than delete_after
    into: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as a JSON-ready dict."""
        return {"data_model": self.data_model, "rolled_rows": self.rolled_rows, "target_rows": self.target_rows,
                "deleted_rows": self.deleted_rows, "into": self.into}


def _days(value: Any, name: str, label: str) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ImproperlyConfigured(
            f"TRACKABLE_RETENTION[{label!r}][{name!r}] is {value!r}; it must be a positive number of days."
        )
    return timedelta(days=value)


def policy_from(label: str, spec: Any) -> Policy:
    """Return the Policy for one TRACKABLE_RETENTION entry; raise ImproperlyConfigured naming the fix."""
    try:
        dm = apps.get_model(label)
    except (LookupError, ValueError):
        dm = None
    if dm is None or dm not in site.data_models():
        raise ImproperlyConfigured(f"TRACKABLE_RETENTION names {label!r}, which is not a registered trackable data model.")
    if not issubclass(dm, TrackableTimeSeriesData):
        raise ImproperlyConfigured(
            f"TRACKABLE_RETENTION names {label!r}, which keeps no time series; only time series can be trimmed."
        )
    if not isinstance(spec, dict) or not set(spec) <= KEYS or not spec:
        raise ImproperlyConfigured(
            f"TRACKABLE_RETENTION[{label!r}] must be a dict with some of the keys {', '.join(sorted(KEYS))}; got {spec!r}."
        )
    policy = Policy(dm, _days(spec.get("rollup_after_days"), "rollup_after_days", label),
                    delete_after=_days(spec.get("delete_after_days"), "delete_after_days", label))
    if (policy.rollup_after is None) != (spec.get("rollup_to") is None):
        raise ImproperlyConfigured(f"TRACKABLE_RETENTION[{label!r}] needs both rollup_after_days and rollup_to, or neither.")
    if policy.rollup_after is not None:
        policy.rollup_to, policy.granularity = _target(dm, spec["rollup_to"], label)
        if policy.delete_after is not None and policy.delete_after <= policy.rollup_after:
            raise ImproperlyConfigured(
                f"TRACKABLE_RETENTION[{label!r}]: delete_after_days must be more than rollup_after_days, or rows are "
                f"deleted before they are rolled up."
            )
    return policy


def _target(dm: type[models.Model], rollup_to: Any, label: str) -> tuple[type[models.Model], str]:
    """Return (target data model, granularity) of `rollup_to`: a granularity name or a data model label."""
    granularity = time_series(dm).granularity
    allowed = COARSER[granularity]
    if rollup_to in GRANULARITIES:
        if rollup_to not in allowed:
            raise ImproperlyConfigured(
                f"TRACKABLE_RETENTION[{label!r}]: cannot roll {granularity} buckets up into {rollup_to} buckets; "
                f"choose one of: {', '.join(allowed) or 'none (nothing is coarser and aligned)'}."
            )
        return dm, rollup_to
    try:
        target = apps.get_model(str(rollup_to))
    except (LookupError, ValueError):
        target = None
    if target is None or target not in site.data_models() or not issubclass(target, TrackableTimeSeriesData):
        raise ImproperlyConfigured(
            f"TRACKABLE_RETENTION[{label!r}]['rollup_to'] is {rollup_to!r}: name a coarser granularity "
            f"({', '.join(allowed)}) or a registered time series data model as app_label.ModelName."
        )
    if target.granularity not in allowed:
        raise ImproperlyConfigured(
            f"TRACKABLE_RETENTION[{label!r}]: {target._meta.label} counts by {target.granularity}, which is not a "
            f"coarser granularity aligned with {granularity} ({', '.join(allowed) or 'none'})."
        )
    own, theirs = [f.name for f in dimension_fields(dm)], [f.name for f in dimension_fields(target)]
    if own != theirs:
        raise ImproperlyConfigured(
            f"TRACKABLE_RETENTION[{label!r}]: {target._meta.label} has the dimensions [{', '.join(theirs)}], not those of "
            f"{dm._meta.label} [{', '.join(own)}]; a breakdown rolls up into one with the same Dimension fields."
        )
    missing = [f for f in counter_fields(dm) if f not in counter_fields(target)]
    missing += [f.name for f in unique_fields(dm) if f.name not in {u.name for u in unique_fields(target)}]
    parents = [p.__name__ for p in site.parents_of(dm) if not site.is_registered(p, target)]
    if missing or parents:
        what = f"the counter fields {', '.join(missing)}" if missing else f"the parents {', '.join(parents)}"
        raise ImproperlyConfigured(f"TRACKABLE_RETENTION[{label!r}]: {target._meta.label} lacks {what} of {dm._meta.label}.")
    return target, target.granularity


def parse_policies(retention: dict[str, Any] | None = None) -> list[Policy]:
    """Return the policies of TRACKABLE_RETENTION (or of `retention`)."""
    retention = settings.RETENTION if retention is None else retention
    if not isinstance(retention, dict):
        raise ImproperlyConfigured(f"TRACKABLE_RETENTION is {retention!r}; it must be a dict of data model labels to policies.")
    return [policy_from(label, spec) for label, spec in retention.items()]


def trim(policy: Policy, *, now: datetime | None = None, batch_size: int = 1000, dry_run: bool = False) -> TrimResult:
    """Roll up, then delete, the old rows of one data model according to `policy`."""
    now = now or clock()
    result = TrimResult(policy.data_model._meta.label)
    if policy.rollup_after is not None:
        target, granularity = policy.rollup()
        result.into = f"{target._meta.label} ({granularity})"
        cutoff = bucket_start(now - policy.rollup_after, granularity, get_zone(settings.time_zone))
        _rollup(policy, cutoff, batch_size, dry_run, result)
    if policy.delete_after is not None:
        _delete(policy.data_model, now - policy.delete_after, batch_size, dry_run, result)
    return result


def _rollup(policy: Policy, cutoff: datetime, batch_size: int, dry_run: bool, result: TrimResult) -> None:
    dm, (target, _) = policy.data_model, policy.rollup()
    names = list(counter_fields(dm))
    dims = [f.attname for f in dimension_fields(dm)]  # a breakdown's rows roll up per value
    db = router.db_for_write(dm)
    query = dm._default_manager.using(db).filter(collected_during__lt=cutoff).order_by("pk")
    if not dry_run and connections[db].features.has_select_for_update_skip_locked:
        # Two trims at once must not move the same row twice; a locked row waits for the next run.
        query = query.select_for_update(skip_locked=True)
    last_pk = None
    while True:
        with transaction.atomic(using=db):
            page = query if last_pk is None else query.filter(pk__gt=last_pk)
            rows = list(page.values_list("pk", "content_type_id", "object_id", "collected_during", *dims, *names)[:batch_size])
            if not rows:
                return
            last_pk = rows[-1][0]
            add, sub, pks = _plan(rows, names, policy, len(dims))
            if dims and add:
                # A coarse bucket gathers the values of many fine ones: it keeps the breakdown's limit of
                # distinct values too, the rest counted under "(other)" (locked and read like the fold does).
                from trackable.cardinality import cap_values

                add = cap_values(connections[db], target, add)
            result.rolled_rows += len(pks)
            result.target_rows += len(add)
            if dry_run or not sub:
                continue
            upsert_increments(connections[db], target, add)
            _merge_sketches(dm, target, db, pks, policy)
            _subtract(dm, db, sub, names)
            dm._default_manager.using(db).filter(pk__in=pks, **dict.fromkeys(names, 0)).delete()


def _merge_sketches(dm: type[models.Model], target: type[models.Model], db: str, pks: list, policy: Policy) -> None:
    """Union the UniqueVisitors sketches of the moved rows into their coarser rows (created by the upsert)."""
    fields = [f.attname for f in unique_fields(dm)]
    if not fields:
        return
    from trackable import sketches

    zone, granularity = get_zone(settings.time_zone), policy.rollup()[1]
    gathered: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    rows = (
        dm._default_manager.using(db).filter(pk__in=pks).values_list("content_type_id", "object_id", "collected_during", *fields)
    )
    for ct_id, object_id, bucket, *values in rows:
        key = (ct_id, object_id, bucket_start(bucket, granularity, zone))
        for name, value in zip(fields, values, strict=False):
            if value is not None:
                gathered[key][name].append(value)
    lg_k = {f.attname: f.lg_k for f in unique_fields(dm)}
    updates = {key: {name: sketches.union(parts, lg_k[name]) for name, parts in per.items()} for key, per in gathered.items()}
    sketches.merge_sketches(connections[db], target, updates)


def _subtract(dm: type[models.Model], db: str, sub: dict[Any, dict[str, int]], names: list[str]) -> None:
    """Subtract the moved amounts from the old rows in SQL (`n = n - moved`), a few hundred rows per statement."""
    positive = {n for n in names if dm._meta.get_field(n).get_internal_type() in POSITIVE_TYPES}
    items = list(sub.items())
    for start in range(0, len(items), 200):
        chunk = items[start : start + 200]
        changes = {}
        for name in names:
            whens = [When(pk=pk, then=F(name) - amounts[name]) for pk, amounts in chunk if amounts[name]]
            if whens:
                value = Case(*whens, default=F(name), output_field=models.BigIntegerField())
                changes[name] = Greatest(value, Value(0), output_field=models.BigIntegerField()) if name in positive else value
        if changes:
            dm._default_manager.using(db).filter(pk__in=[pk for pk, _ in chunk]).update(**changes)


def _plan(rows: list[tuple], names: list[str], policy: Policy, ndims: int = 0) -> tuple[dict, dict, list]:
    """Return (increments of the coarse rows, {old row pk: amounts moved out of it}, those pks) for one batch.

    Each row is (pk, content type, object id, bucket, *dimension values, *counters).
    """
    zone, (target, granularity) = get_zone(settings.time_zone), policy.rollup()
    add: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sub: dict[Any, dict[str, int]] = {}
    pks = []
    for pk, ct_id, object_id, bucket, *rest in rows:
        dimension_values, values = tuple(rest[:ndims]), rest[ndims:]
        coarse = bucket_start(bucket, granularity, zone)
        if target is policy.data_model and coarse == bucket:
            continue  # already a coarse row of this model: it receives, it does not move
        for name, value in zip(names, values, strict=False):
            if value:
                add[(ct_id, object_id, coarse) + dimension_values][name] += value
        sub[pk] = dict(zip(names, values, strict=False))
        pks.append(pk)
    return add, sub, pks


def _delete(dm: type[models.Model], cutoff: datetime, batch_size: int, dry_run: bool, result: TrimResult) -> None:
    db = router.db_for_write(dm)
    query = dm._default_manager.using(db).filter(collected_during__lt=cutoff)
    if dry_run:
        result.deleted_rows += query.count()
        return
    while True:
        pks = list(query.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not pks:
            return
        deleted, _ = dm._default_manager.using(db).filter(pk__in=pks).delete()
        result.deleted_rows += deleted
