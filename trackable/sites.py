"""The registry of parent models and their data models, modelled on django.contrib.admin.sites."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from trackable.buckets import GRANULARITIES
from trackable.exceptions import AlreadyRegistered, AmbiguousField, NotRegistered, UnknownField
from trackable.fields import feeds_visitors
from trackable.pklimits import PkLimits, pk_limits

__all__ = ["TrackableSite", "Route", "site"]

# Internal types of the fields a counter can be; a primary key may also be an auto field.
COUNTER_TYPES = frozenset(
    {
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)
INTEGER_TYPES = COUNTER_TYPES | {"AutoField", "BigAutoField", "SmallAutoField"}


@dataclass(frozen=True)
class Route:
    """Where an increment of one field of one parent model goes: all the request path needs to know."""

    data_model: type[models.Model]
    data_label: str
    parent_label: str
    field: str
    pk_limits: PkLimits
    feeds_visitors: bool = False  # an increment also feeds a UniqueVisitors field (its event carries the visitor)
    # A breakdown's dimensions: (field name, source callable, max_length); empty for a plain data model.
    dimensions: tuple[tuple[str, Any, int], ...] = ()
    # The integer pks every check passes (PkLimits.int_range; an empty range when ints need a full check).
    int_low: int = 1
    int_high: int = 0


class TrackableSite:
    """Map parent models to the data models that count things about them."""

    def __init__(self, name: str = "trackable") -> None:
        self.name = name
        # parent model → {data model: ModelAdmin class or None}
        self._registry: dict[type[models.Model], dict[type[models.Model], Any]] = {}
        self._routes: dict[tuple[type, str, type | None], Route] = {}
        self._all_routes: dict[tuple[type, str, type | None], tuple[Route, ...]] = {}
        self._limits: dict[PkLimits, PkLimits] = {}

    # -- registration -------------------------------------------------------------------------
    def register(
        self,
        model_or_iterable: type[models.Model] | Iterable[type[models.Model]],
        data_model: type[models.Model],
        admin_class: Any = None,
        **options: Any,
    ) -> None:
        """Register one parent model (or several) with a data model and an optional ModelAdmin."""
        self._check_data_model(data_model)
        models_ = [model_or_iterable] if isinstance(model_or_iterable, models.base.ModelBase) else list(model_or_iterable)
        for model in models_:
            if model._meta.abstract:
                raise ImproperlyConfigured(f"The model {model.__name__} is abstract, so it cannot be registered with trackable.")
            if data_model in self._registry.get(model, {}):
                raise AlreadyRegistered(f"{model.__name__} is already registered with {data_model.__name__}.")
            self._check_parent(model, data_model)
        if _admin_installed():
            from trackable.admin import TrackableDataAdmin, register_data_model_admin

            if admin_class is None and options:
                admin_class = type(f"{data_model.__name__}Admin", (TrackableDataAdmin,), dict(options))
            register_data_model_admin(data_model, admin_class)
        for model in models_:
            self._registry.setdefault(model, {})[data_model] = admin_class
        self._routes.clear()
        self._all_routes.clear()

    def unregister(
        self,
        model_or_iterable: type[models.Model] | Iterable[type[models.Model]],
        data_model: type[models.Model] | None = None,
    ) -> None:
        """Unregister a parent model (or several) from one data model, or from all of them."""
        models_ = [model_or_iterable] if isinstance(model_or_iterable, models.base.ModelBase) else list(model_or_iterable)
        for model in models_:
            registered = self._registry.get(model, {})
            if not registered or (data_model is not None and data_model not in registered):
                what = f" with {data_model.__name__}" if data_model is not None else ""
                raise NotRegistered(f"The model {model.__name__} is not registered{what}.")
        dropped = set()
        for model in models_:
            registered = self._registry[model]
            for dm in [data_model] if data_model is not None else list(registered):
                del registered[dm]
                dropped.add(dm)
            if not registered:
                del self._registry[model]
        self._routes.clear()
        self._all_routes.clear()
        if not _admin_installed():
            return
        from trackable.admin import unregister_data_model_admin

        for dm in dropped:
            if not self.parents_of(dm):
                unregister_data_model_admin(dm)

    def is_registered(self, model: type[models.Model], data_model: type[models.Model] | None = None) -> bool:
        """Return whether the parent model is registered (with `data_model`, when given)."""
        registered = self._registry.get(model, {})
        return bool(registered) if data_model is None else data_model in registered

    # -- look-ups (in memory only: these run on the request path) ------------------------------
    def get_data_models(self, model: type[models.Model]) -> list[type[models.Model]]:
        """Return the data models registered for a parent model."""
        return list(self._registry.get(model, {}))

    def data_models(self) -> list[type[models.Model]]:
        """Return every registered data model, each once, in registration order."""
        seen: dict[type, None] = {}
        for registered in self._registry.values():
            seen.update(dict.fromkeys(registered))
        return list(seen)

    def parents_of(self, data_model: type[models.Model]) -> list[type[models.Model]]:
        """Return the parent models a data model is registered for."""
        return [model for model, registered in self._registry.items() if data_model in registered]

    def get_data_model(self, label: str) -> type[models.Model] | None:
        """Return the registered data model whose label_lower is `label`, or None."""
        for dm in self.data_models():
            if dm._meta.label_lower == label:
                return dm
        return None

    def route(self, model: type[models.Model], field: str, data_model: type[models.Model] | None = None) -> Route:
        """Return where an increment of `field` for an instance of `model` goes; raise if nowhere."""
        key = (model, field, data_model)
        try:
            return self._routes[key]
        except KeyError:
            pass
        route = self._resolve(model, field, data_model)
        self._routes[key] = route
        return route

    def routes(self, model: type[models.Model], field: str, data_model: type[models.Model] | None = None) -> tuple[Route, ...]:
        """Return every data model an increment of `field` counts in: the plain one (if any), then the breakdowns.

        With `data_model` a breakdown, only that one; with a plain one (or None), that one and every
        breakdown of `model` with the field. Raise like route() when the field is counted nowhere.
        """
        key = (model, field, data_model)
        found = self._all_routes.get(key)
        if found is not None:
            return found
        from django.apps import apps

        from trackable.fields import is_breakdown
        from trackable.models import counter_fields

        if data_model is not None and is_breakdown(data_model):
            found = (self.route(model, field, data_model),)
        else:
            main = self.route(model, field, data_model)
            parent = apps.get_model(main.parent_label)
            extra = [
                self.route(parent, field, dm)
                for dm in self._registry.get(parent, {})
                if is_breakdown(dm) and dm is not main.data_model and field in counter_fields(dm)
            ]
            found = (main, *extra)
        self._all_routes[key] = found
        return found

    def _resolve(self, model: type[models.Model], field: str, data_model: type[models.Model] | None) -> Route:
        from trackable.fields import dimension_fields, is_breakdown
        from trackable.models import counter_fields

        registered = self._registry.get(model)
        if registered is None and model._meta.proxy:
            model = model._meta.concrete_model or model
            registered = self._registry.get(model)
        if not registered:
            raise NotRegistered(
                f"The model {model.__name__} is not registered with trackable; call "
                f"trackable.site.register({model.__name__}, <data model>) in a trackables.py module."
            )
        if data_model is not None and data_model not in registered:
            raise NotRegistered(f"The model {model.__name__} is not registered with {data_model.__name__}.")
        candidates = [data_model] if data_model is not None else list(registered)
        matches = [dm for dm in candidates if field in counter_fields(dm)]
        if data_model is None and len(matches) > 1:
            # Breakdowns follow the plain counter of the same name: they never make it ambiguous (routes()
            # lists them all; with breakdowns only, the first one registered stands for the rest).
            matches = [dm for dm in matches if not is_breakdown(dm)] or matches[:1]
        if not matches:
            names = sorted({f for dm in candidates for f in counter_fields(dm)})
            owner = " or ".join(dm.__name__ for dm in candidates)
            raise UnknownField(
                f"{field!r} is not a counter field of {owner}; the counter fields are: {', '.join(names)}."
            )
        if len(matches) > 1:
            raise AmbiguousField(
                f"{field!r} is a counter field of several data models of {model.__name__} "
                f"({', '.join(dm.__name__ for dm in matches)}); pass data_model= to choose one."
            )
        dm = matches[0]
        from trackable.dimensions import source_of

        dimensions = tuple((f.name, source_of(f.source), f.max_length or 0) for f in dimension_fields(dm))
        limits = pk_limits(model, dm)
        limits = self._limits.setdefault(limits, limits)  # equal limits, one object: build() checks a pk once
        low, high = limits.int_range() or (1, 0)
        return Route(
            dm, dm._meta.label_lower, model._meta.label_lower, field, limits, feeds_visitors(dm, field), dimensions,
            low, high,
        )

    # -- checks ------------------------------------------------------------------------------------
    @staticmethod
    def _check_data_model(data_model: Any) -> None:
        from trackable.models import TrackableData, TrackableTimeSeriesData, counter_fields

        if not (isinstance(data_model, type) and issubclass(data_model, TrackableData)):
            raise ImproperlyConfigured(
                f"{getattr(data_model, '__name__', data_model)!r} is not a data model: data models subclass "
                "trackable.TrackableData or trackable.TrackableTimeSeriesData."
            )
        if data_model._meta.abstract:
            raise ImproperlyConfigured(
                f"The data model {data_model.__name__} is abstract; register a concrete subclass of it."
            )
        if not counter_fields(data_model):
            raise ImproperlyConfigured(
                f"The data model {data_model.__name__} has no counter field; add one, e.g. "
                "impressions = models.PositiveIntegerField(default=0)."
            )
        _check_breakdown(data_model)
        if issubclass(data_model, TrackableTimeSeriesData) and data_model.granularity not in GRANULARITIES:
            raise ImproperlyConfigured(
                f"{data_model.__name__}.granularity is {data_model.granularity!r}; choose one of "
                f"{', '.join(GRANULARITIES)}."
            )

    @staticmethod
    def _check_parent(model: type[models.Model], data_model: type[models.Model]) -> None:
        pk_type = (
            model._meta.pk.target_field.get_internal_type() if model._meta.pk.is_relation else model._meta.pk.get_internal_type()
        )
        oid = cast(models.Field, data_model._meta.get_field("object_id"))  # a concrete field, not a relation
        oid_type = oid.get_internal_type()
        if pk_type in INTEGER_TYPES:
            ok = oid_type in INTEGER_TYPES or oid_type in {"CharField", "TextField"}
            want = "models.BigIntegerField()"
        elif pk_type == "UUIDField":
            ok = oid_type == "UUIDField"
            want = "models.UUIDField()"
        elif pk_type in {"CharField", "SlugField", "TextField"}:
            ok = oid_type in {"CharField", "SlugField", "TextField"} and (
                oid_type == "TextField" or (oid.max_length or 0) >= (model._meta.pk.max_length or 0)
            )
            want = f"models.CharField(max_length={model._meta.pk.max_length})"
        else:
            raise ImproperlyConfigured(
                f"{model.__name__} has a {pk_type} primary key, which trackable cannot store; parents need "
                "an integer, UUID or string primary key."
            )
        if not ok:
            raise ImproperlyConfigured(
                f"{model.__name__} has a {pk_type} primary key but {data_model.__name__}.object_id is a "
                f"{oid_type}; declare object_id = {want} on {data_model.__name__}."
            )


def _check_breakdown(data_model: type[models.Model]) -> None:
    """Refuse a breakdown that cannot work: not a time series, with visitor sketches, or with an unknown source."""
    from trackable.dimensions import source_of
    from trackable.fields import dimension_fields, unique_fields
    from trackable.models import TrackableTimeSeriesData

    dimensions = dimension_fields(data_model)
    if not dimensions:
        return
    if not issubclass(data_model, TrackableTimeSeriesData):
        raise ImproperlyConfigured(
            f"The data model {data_model.__name__} has Dimension fields but keeps no time series; "
            "breakdowns subclass trackable.TrackableTimeSeriesData."
        )
    if unique_fields(data_model):
        raise ImproperlyConfigured(
            f"The breakdown {data_model.__name__} has UniqueVisitors fields; count visitors in a plain data model."
        )
    from trackable.messages import MAX_DIMENSION_CHARS

    for f in dimensions:
        if not 0 < (f.max_length or 0) <= MAX_DIMENSION_CHARS:
            raise ImproperlyConfigured(
                f"{data_model.__name__}.{f.name} has max_length={f.max_length}; a dimension holds 1 to "
                f"{MAX_DIMENSION_CHARS} characters (the most an event carries)."
            )
        if f.source is None:
            raise ImproperlyConfigured(
                f"{data_model.__name__}.{f.name} has no source; declare e.g. trackable.Dimension(\"referrer_host\")."
            )
        try:
            source_of(f.source)
        except ImproperlyConfigured as err:
            raise ImproperlyConfigured(f"{data_model.__name__}.{f.name}: {err}") from err


def _admin_installed() -> bool:
    """Return whether django.contrib.admin is installed: tracking works without it."""
    from django.apps import apps

    return apps.is_installed("django.contrib.admin")


site = TrackableSite()
