"""The special fields of data models: UniqueVisitors (a sketch of a bucket's visitors) and Dimension (a breakdown key)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = [
    "UniqueVisitors",
    "unique_fields",
    "feeds_visitors",
    "DEFAULT_LG_K",
    "Dimension",
    "dimension_fields",
    "is_breakdown",
    "DEFAULT_DIMENSION_LENGTH",
    "OTHER",
]

DEFAULT_LG_K = 12  # 4096 HLL registers: about ±3.2 % at 95 % confidence for a union of buckets


class UniqueVisitors(models.BinaryField):
    """Hold an Apache DataSketches HLL sketch of the visitors of one row (compact serialized bytes).

    Declare it on a time series data model next to its counters::

        visitors = trackable.UniqueVisitors()                      # visitors of any counter's events
        readers = trackable.UniqueVisitors(of=["reads"])           # only of events of these counters

    `lg_k` (4–21, default 12) sets the sketch's size and accuracy. The column is NULL until a visitor
    is folded into the row; only the fold writes it, by a union, never by assignment.
    """

    description = _("Unique visitors (a mergeable sketch)")

    def __init__(self, *args: Any, of: Iterable[str] | None = None, lg_k: int = DEFAULT_LG_K, **kwargs: Any) -> None:
        self.of = None if of is None else (of,) if isinstance(of, str) else tuple(of)
        self.lg_k = lg_k
        kwargs.setdefault("null", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        for key in ("null", "editable"):
            kwargs.pop(key, None)
        if self.of is not None:
            kwargs["of"] = list(self.of)
        if self.lg_k != DEFAULT_LG_K:
            kwargs["lg_k"] = self.lg_k
        return name, "trackable.fields.UniqueVisitors", args, kwargs

    def counts(self, counter: str) -> bool:
        """Return whether an event of `counter` feeds this field's visitors."""
        return self.of is None or counter in self.of


@cache
def unique_fields(model: type[models.Model]) -> tuple[UniqueVisitors, ...]:
    """Return the UniqueVisitors fields of a data model (empty for most)."""
    return tuple(f for f in model._meta.concrete_fields if isinstance(f, UniqueVisitors))


@cache
def feeds_visitors(model: type[models.Model], counter: str) -> bool:
    """Return whether an event of `counter` of data model `model` feeds one of its UniqueVisitors fields."""
    return any(f.counts(counter) for f in unique_fields(model))


DEFAULT_DIMENSION_LENGTH = 200
OTHER = "(other)"  # the value under which a bucket's values beyond the cap are counted (trackable.cardinality)


class Dimension(models.CharField):
    """Hold one value of a breakdown (a referrer host, a path, a browser …): part of the row's unique key.

    Declare it on a time series data model next to its counters::

        referrer = trackable.Dimension("referrer_host")          # a built-in source (trackable.dimensions)
        plan = trackable.Dimension(lambda request: request.GET.get("plan"), max_length=40)

    Each send of a counter of the parent then also counts here, under the value the source returns
    for the request (normalised and cut to `max_length`; None or no request: the empty value, shown as
    "(none)"), or under the explicit ``dimensions={"referrer": ...}`` of the send. `max_values` bounds
    the distinct values kept per parent per bucket (default TRACKABLE_BREAKDOWN_MAX_VALUES); the rest
    are counted under "(other)". The source is not part of the schema: migrations never see it.
    """

    description = _("Breakdown dimension")

    def __init__(
        self,
        source: Any = None,
        *args: Any,
        max_values: int | None = None,
        max_length: int = DEFAULT_DIMENSION_LENGTH,
        **kwargs: Any,
    ) -> None:
        self.source = source
        self.max_values = max_values
        kwargs.setdefault("default", "")
        kwargs.setdefault("blank", True)
        kwargs.setdefault("editable", False)
        kwargs["max_length"] = max_length
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        for key in ("default", "blank", "editable"):
            kwargs.pop(key, None)
        if kwargs.get("max_length") == DEFAULT_DIMENSION_LENGTH:
            del kwargs["max_length"]
        return name, "trackable.fields.Dimension", args, kwargs


@cache
def dimension_fields(model: type[models.Model]) -> tuple[Dimension, ...]:
    """Return the Dimension fields of a data model, in declaration order (empty for plain data models)."""
    return tuple(f for f in model._meta.concrete_fields if isinstance(f, Dimension))


def is_breakdown(model: type[models.Model]) -> bool:
    """Return whether `model` is a breakdown: a data model with Dimension fields."""
    return bool(dimension_fields(model))
