"""Read breakdowns back: the top values of a dimension with their shares, and a series per value.

The target of each function is one object (a model instance), the objects of a queryset, or every
object of a parent model (the model class). Windows are half-open like the rest of trackable.query.
The values beyond the top `n`, and those the fold counted under "(other)" (see trackable.cardinality),
are summed into one last "(other)" entry, so the shares add up to 1 and the totals stay exact.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from django.db import connections, models
from django.db.models import Sum
from django.db.models.functions import Cast

from trackable.exceptions import QueryError
from trackable.fields import OTHER, Dimension, dimension_fields
from trackable.models import counter_fields, model_field
from trackable.query import Point, _check_n, _pk_kind, _rows, _rows_of_model, _window, bucketed
from trackable.sites import site

__all__ = [
    "ValueEntry",
    "NONE_LABEL",
    "label",
    "breakdown_dimension",
    "dimensions_of",
    "target_model",
    "top_values",
    "value_series",
]

NONE_LABEL = "(none)"  # how the empty value (no referrer, no search terms …) is shown


class ValueEntry(NamedTuple):
    """One value of a dimension: its total in the window and its share of the window's total (0 to 1)."""

    value: str
    total: int
    share: float


def label(value: str) -> str:
    """Return how a dimension value is shown: the empty value as "(none)"."""
    return value or NONE_LABEL


def dimensions_of(model: type[models.Model]) -> list[tuple[type[models.Model], Dimension]]:
    """Return (breakdown, Dimension field) of every breakdown registered for parents of `model`."""
    candidates = site.get_data_models(model)
    if not candidates and model._meta.proxy:
        candidates = site.get_data_models(model._meta.concrete_model or model)
    return [(dm, f) for dm in candidates for f in dimension_fields(dm)]


def breakdown_dimension(
    model: type[models.Model], dimension: str, field: str | None = None, data_model: type[models.Model] | None = None
) -> tuple[type[models.Model], Dimension, str]:
    """Return (breakdown data model, Dimension field, counter) for `dimension` of `model`; raise QueryError if none."""
    if not isinstance(dimension, str) or not dimension:
        raise QueryError(f"Name the dimension to break down by, not {dimension!r}.")
    found = [(dm, f) for dm, f in dimensions_of(model) if data_model is None or dm is data_model]
    if not found:
        raise QueryError(f"{model.__name__} has no breakdown registered; see docs/breakdowns.rst to declare one.")
    matches = [(dm, f) for dm, f in found if f.name == dimension and (field is None or field in counter_fields(dm))]
    if not matches:
        names = sorted({f.name for _, f in found})
        what = f" counting {field!r}" if field else ""
        raise QueryError(
            f"{dimension!r} is not a dimension of {model.__name__}'s breakdowns{what}; those are: {', '.join(names)}."
        )
    if len(matches) > 1:
        owners = ", ".join(dm.__name__ for dm, _ in matches)
        raise QueryError(f"{dimension!r} is a dimension of several breakdowns of {model.__name__} ({owners}); pass data_model=.")
    dm, f = matches[0]
    if field is None:
        spider = set(getattr(dm, "spider_fields", {}).values())
        counters = [c for c in counter_fields(dm) if c not in spider]
        if len(counters) != 1:
            raise QueryError(f"{dm.__name__} has several counters ({', '.join(counters)}); name the one to read.")
        field = counters[0]
    return dm, f, field


def target_model(target: Any) -> type[models.Model]:
    """Return the parent model of a target: an object's class, a queryset's model, or the model itself."""
    if isinstance(target, models.Model):
        return type(target)
    if isinstance(target, models.QuerySet):
        return target.model
    if isinstance(target, type) and issubclass(target, models.Model):
        return target
    raise QueryError(f"Break down an object, a queryset or a model, not {target!r:.80}.")


def _target_rows(target: Any, dm: type[models.Model], using: str | None) -> models.QuerySet:
    """Return the rows of `dm` belonging to `target`: one object, the objects of a queryset, or a whole model."""
    if isinstance(target, models.Model):
        return _rows(dm, target, using)
    if isinstance(target, models.QuerySet):
        rows = _rows_of_model(dm, target.model, using or target.db)
        if target.query.has_filters():
            among = target.order_by().values("pk")
            if _pk_kind(target.model) != _pk_kind(dm, "object_id"):
                among = among.values(oid=Cast("pk", model_field(dm, "object_id"))).values("oid")
            rows = rows.filter(object_id__in=among)
        return rows
    return _rows_of_model(dm, target, using)


def top_values(
    target: Any,
    dimension: str,
    field: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    n: int = 10,
    *,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> list[ValueEntry]:
    """Return the `n` values of `dimension` with the highest totals of `field` in the window, then "(other)".

    `target` is an object, a queryset or a parent model; `field` may be left out when the breakdown
    has one counter (its spider counters aside). One SQL query: the sums per value, ranked, with the
    window's total beside them (a window function over the grouped rows).
    """
    n = _check_n(n)
    dm, dim, field = breakdown_dimension(target_model(target), dimension, field, data_model)
    rows = _window(_target_rows(target, dm, using), dm, start, end)
    grouped = rows.order_by().values(dim.attname).annotate(trackable_sum=Sum(field))
    inner, params = grouped.query.sql_with_params()
    connection = connections[rows.db]
    value, total = connection.ops.quote_name(str(dim.column)), connection.ops.quote_name("trackable_sum")
    sql = (
        f"SELECT s.{value}, s.{total}, SUM(s.{total}) OVER () FROM ({inner}) s "
        f"ORDER BY CASE WHEN s.{value} = %s THEN 1 ELSE 0 END, s.{total} DESC, s.{value} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, OTHER, n])
        found = cursor.fetchall()
    whole = int(found[0][2]) if found else 0
    entries = [(v, int(t)) for v, t, _ in found if v != OTHER and t > 0]
    rest = whole - sum(t for _, t in entries)
    if rest:
        entries.append((OTHER, rest))
    return [ValueEntry(value, t, t / whole if whole else 0.0) for value, t in entries]


def value_series(
    target: Any,
    dimension: str,
    field: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    values: list[str] | None = None,
    n: int = 5,
    granularity: str | None = None,
    tz: str | tzinfo | None = None,
    data_model: type[models.Model] | None = None,
    using: str | None = None,
) -> dict[str, list[Point]]:
    """Return {value: series of `field`} for the given `values` (default: the top `n` of the window), empty buckets as 0."""
    if start is None or end is None:
        raise QueryError("A series needs a window: give start and end.")
    dm, dim, field = breakdown_dimension(target_model(target), dimension, field, data_model)
    if values is None:
        top = top_values(target, dimension, field, start, end, n, data_model=dm, using=using)
        values = [e.value for e in top if e.value != OTHER]
    elif isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise QueryError("values must be a list of dimension values, e.g. ['google.com'].")
    rows = _target_rows(target, dm, using)
    return {value: bucketed(dm, rows.filter(**{dim.attname: value}), field, start, end, granularity=granularity, tz=tz)
            for value in values}
