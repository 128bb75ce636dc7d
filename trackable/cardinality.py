"""Bound a breakdown's distinct values per parent per bucket; count the rest under "(other)" (fold side).

Inside the fold's transaction, before the upsert, for each (parent, bucket) of a batch: the distinct
values each dimension already holds are read; new values are admitted while the dimension has fewer
than its limit (``Dimension(max_values=…)``, else TRACKABLE_BREAKDOWN_MAX_VALUES), the largest amounts
of the batch first, and every other value is counted under "(other)". Every increment lands in some
row, so totals stay exact. Two workers must not both admit a last free place: on PostgreSQL each
(data model, parent, bucket) is claimed with a transaction-level advisory lock, in sorted order, before
its values are read; SQLite lets one transaction write at a time (the fold's ledger insert took that
lock already). On MySQL concurrent folds may overshoot the limit by the values they admit together.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from functools import reduce
from operator import or_
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q

from trackable.conf import settings
from trackable.fields import OTHER, dimension_fields
from trackable.models import model_field

__all__ = ["cap_values", "limits_of"]

GROUPS_PER_QUERY = 200


def limits_of(dm: type[models.Model]) -> list[int]:
    """Return the distinct values each dimension of `dm` keeps per parent per bucket."""
    return [f.max_values or settings.BREAKDOWN_MAX_VALUES for f in dimension_fields(dm)]


def cap_values(
    connection: BaseDatabaseWrapper, dm: type[models.Model], totals: dict[tuple, dict[str, int]]
) -> dict[tuple, dict[str, int]]:
    """Return `totals` with the values beyond each dimension's limit replaced by "(other)" (amounts merged)."""
    limits = limits_of(dm)
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    for key in totals:
        groups[key[:3]].append(key)
    ordered = sorted(groups, key=_group_order)
    _lock(connection, dm, ordered)
    existing = _existing(connection, dm, ordered)
    out: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for group, keys in groups.items():
        known = existing.get(group) or [set() for _ in limits]
        allowed = [_admit(known[i], limit, keys, totals, i) for i, limit in enumerate(limits)]
        for key in keys:
            values = tuple(v if v in allowed[i] else OTHER for i, v in enumerate(key[3:]))
            merged = out[group + values]
            for name, delta in totals[key].items():
                merged[name] += delta
    return out


def _admit(known: set[str], limit: int, keys: list[tuple], totals: dict[tuple, dict[str, int]], index: int) -> set[str]:
    """Return the values of dimension `index` that keep their own row: those known, then new ones while there is room."""
    weights: dict[str, int] = defaultdict(int)
    for key in keys:
        value = key[3 + index]
        if value not in known:
            weights[value] += sum(abs(d) for d in totals[key].values())
    allowed = set(known) | {OTHER}
    room = limit - len(known - {OTHER})
    for value, _ in sorted(weights.items(), key=lambda item: (-item[1], item[0])):
        if room <= 0:
            break
        if value != OTHER:
            allowed.add(value)
            room -= 1
    return allowed


def _group_order(group: tuple) -> tuple:
    return tuple((0, v) if isinstance(v, int) else (1, str(v)) for v in group)


def _lock(connection: BaseDatabaseWrapper, dm: type[models.Model], groups: list[tuple]) -> None:
    """Take PostgreSQL advisory locks on the (data model, parent, bucket) groups, in order, until commit."""
    if connection.vendor != "postgresql" or not groups:
        return
    table = dm._meta.db_table
    keys = [_lock_key(f"{table}:{ct}:{oid}:{bucket.isoformat()}") for ct, oid, bucket in groups]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", [keys])


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _existing(connection: BaseDatabaseWrapper, dm: type[models.Model], groups: list[tuple]) -> dict[tuple, list[set[str]]]:
    """Return {group: [distinct values of each dimension]} of the rows already stored for `groups`."""
    names = [f.attname for f in dimension_fields(dm)]
    found: dict[tuple, list[set[str]]] = {}
    if connection.vendor == "postgresql" and groups:
        rows = _existing_unnest(connection, dm, groups, names)
    else:
        rows = _existing_orm(connection, dm, groups, names)
    for ct, oid, bucket, *values in rows:
        sets = found.setdefault((ct, oid, bucket), [set() for _ in names])
        for i, value in enumerate(values):
            sets[i].add(value)
    return found


def _existing_unnest(connection: BaseDatabaseWrapper, dm: type[models.Model], groups: list[tuple], names: list[str]) -> list:
    """Read the stored values of every group in one statement: the groups joined as arrays (PostgreSQL)."""
    qn = connection.ops.quote_name
    keys = [model_field(dm, "content_type"), model_field(dm, "object_id"), model_field(dm, "collected_during")]
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in keys)
    columns = [qn(str(f.column)) for f in keys]
    values = ", ".join(f"t.{qn(name)}" for name in names)
    sql = (
        f"SELECT DISTINCT t.{columns[0]}, t.{columns[1]}, t.{columns[2]}, {values} "
        f"FROM {qn(dm._meta.db_table)} AS t JOIN unnest({arrays}) AS g(ct, oid, bucket) "
        f"ON t.{columns[0]} = g.ct AND t.{columns[1]} = g.oid AND t.{columns[2]} = g.bucket"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(column) for column in zip(*groups, strict=True)])
        return cursor.fetchall()


def _existing_orm(connection: BaseDatabaseWrapper, dm: type[models.Model], groups: list[tuple], names: list[str]) -> list:
    out: list = []
    manager: Any = dm._default_manager.db_manager(connection.alias)
    for start in range(0, len(groups), GROUPS_PER_QUERY):
        chunk = groups[start : start + GROUPS_PER_QUERY]
        where = reduce(or_, (Q(content_type_id=ct, object_id=oid, collected_during=bucket) for ct, oid, bucket in chunk))
        out += manager.filter(where).order_by().values_list("content_type_id", "object_id", "collected_during", *names).distinct()
    return out
