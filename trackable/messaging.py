"""Send tracking messages from views (the public producer API).

Sends append to the process's journal (trackable/journal.py), relayed to the broker by a background
thread (trackable/relay.py); with ``TRACKABLE_JOURNAL = False`` they publish from the request
(trackable/delivery.py). ``process_messages`` and ``FoldResult`` (the fold) stay importable from here,
loaded on first use: a web process imports only what sending needs.
"""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models
from django.http import HttpRequest

from trackable import delivery, dimensions, messages, recorded, relay, visitors
from trackable.conf import settings
from trackable.exceptions import InvalidPrimaryKey
from trackable.sites import site

__all__ = [
    "TrackableMessage",
    "IncrementMessage",
    "IncrementsMessage",
    "send_increment_message",
    "send_decrement_message",
    "send_message",
    "process_messages",  # noqa: F822 - lazy (module __getattr__): sending must not import fold code
    "FoldResult",  # noqa: F822 - lazy, as above
]

logger = logging.getLogger("trackable")

_FOLD_NAMES = {"process_messages", "FoldResult"}

#: The clock (seconds since the epoch) that dates each event; tests replace it.
clock = time.time


def __getattr__(name: str) -> Any:
    """Load the fold on first use of process_messages or FoldResult (PEP 562): senders never import it."""
    if name in _FOLD_NAMES:
        from trackable import folding

        return getattr(folding, name)
    raise AttributeError(f"module 'trackable.messaging' has no attribute {name!r}")


class TrackableMessage(ABC):
    """A message type: the increments one tracking call sends; subclass and define events()."""

    def __init__(
        self,
        request: HttpRequest | None,
        obj: models.Model,
        *,
        data_model: type[models.Model] | None = None,
        visitor: Any = None,
        dimensions: Mapping[str, Any] | None = None,
    ):
        self.request = request
        self.obj = obj
        self.data_model = data_model
        self.visitor = visitor  # an explicit identity; only its salted hash leaves build()
        self.dimensions = dimensions  # explicit breakdown values, {dimension name: value}

    @abstractmethod
    def events(self) -> Iterable[tuple[str, int]]:
        """Return the (field, amount) pairs this message carries."""

    def should_send(self) -> bool:
        """Return whether to send at all: a hook for subclasses (spiders are screened by screen())."""
        return True

    def screen(self, grouped: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
        """Return the events to send: all for people; for a spider only those its data models count apart."""
        if self.request is None or not settings.USER_AGENT_FILTERING:
            return grouped
        from trackable import spiders

        if not spiders.is_spider(self.request.META.get("HTTP_USER_AGENT")):
            return grouped
        deferred = recorded.detach(grouped)  # their breakdowns' events are diverted by the relay
        grouped = spiders.divert(grouped)
        kept = [event for event in deferred if recorded.mark_spider(event)]
        if kept:
            grouped[recorded.DEFERRED] = kept
        return grouped

    def build(self, ts_ms: int | None = None) -> dict[str, list[tuple]]:
        """Return the events grouped by data model label; raise on bad fields.

        Each increment goes to the field's data model and to every breakdown of the object with that
        field; a 7th item carries {"u": hash} (the visitor) or {"d": {dimension: value}} (a breakdown's key).
        With the journal and a request, the breakdowns of one increment travel as one deferred item (the
        7th of its plain event, or of an event under the label ``""``): the relay computes their values
        from it (trackable/recorded.py).
        """
        obj = self.obj
        if not isinstance(obj, models.Model):
            what = f"the class {obj.__name__}" if isinstance(obj, type) else f"{type(obj).__name__} {obj!r}"
            raise TypeError(f"Track a saved model instance (e.g. MyObject.objects.get(pk=...)), not {what}.")
        pk = obj.pk
        if pk is None:
            raise ValueError(f"Cannot track an unsaved {type(obj).__name__}: save it first so it has a primary key.")
        if not isinstance(pk, int):
            pk = str(pk)
        ts = int(clock() * 1000) if ts_ms is None else ts_ms
        grouped: dict[str, list[tuple]] = defaultdict(list)
        visitor: Any = False  # hashed once, for the first event whose data model counts visitors
        computed: dict[Any, Any] = {}  # each dimension source runs once per send
        named: set[str] = set()
        request = self.request
        defer = request is not None and settings.JOURNAL  # the relay computes the breakdowns' values
        raw: tuple[tuple[str, ...], str] | None = None  # the request's parts their sources read, recorded once
        for field, amount in self.events():
            if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < abs(amount) <= messages.MAX_AMOUNT:
                raise ValueError(
                    f"The amount for {field!r} must be a non-zero integer within ±{messages.MAX_AMOUNT}, not {amount!r}."
                )
            checked = None  # the breakdowns of a parent mostly share its data model's limits (one object)
            routes = site.routes(type(obj), field, self.data_model)
            found = recorded.recipe(routes) if defer and (len(routes) > 1 or routes[0].dimensions) else None
            if found is not None and found.lone is not None and not self.dimensions:  # the common send, the short way
                route = found.lone
                if not (type(pk) is int and route.int_low <= pk <= route.int_high):
                    for limited in (route, *found.limits):
                        _check_pk(limited, pk, obj)
                item = recorded.item(request, found)  # type: ignore[arg-type]  # defer: a request
                grouped[route.data_label].append((route.data_label, route.parent_label, pk, field, amount, ts, item))
                continue
            for route in routes if found is None else found.plain:
                if route.pk_limits is not checked and not (type(pk) is int and route.int_low <= pk <= route.int_high):
                    _check_pk(route, pk, obj)
                    checked = route.pk_limits
                event: tuple = (route.data_label, route.parent_label, pk, field, amount, ts)
                if route.dimensions:
                    values = dimensions.values_for(request, route.dimensions, self.dimensions, computed)
                    named.update(values)
                    event += ({"d": values},)
                elif amount > 0 and route.feeds_visitors:
                    if visitor is False:
                        visitor = visitors.visitor_hash(self.request, self.visitor)
                    if visitor:
                        event += ({"u": visitor},)
                grouped[route.data_label].append(event)
            if found is not None and found.limits:  # breakdowns: one deferred event for them all
                for route in found.limits:
                    if route.pk_limits is not checked and not (type(pk) is int and route.int_low <= pk <= route.int_high):
                        _check_pk(route, pk, obj)
                if raw is None or raw[0] is not found.parts:
                    raw = (found.parts, recorded.capture(request, found))  # type: ignore[arg-type]  # defer: a request
                if self.dimensions:
                    named.update(found.names)
                item = recorded.fragment(request, found, raw[1], self.dimensions, computed)  # type: ignore[arg-type]
                carriers = grouped.get(found.plain[0].data_label) if found.plain else None
                if carriers and len(carriers[-1]) == 6:  # this field's plain event carries it: one event, not two
                    carriers[-1] += (item,)
                else:
                    grouped[recorded.DEFERRED].append((recorded.DEFERRED, routes[0].parent_label, pk, field, amount, ts, item))
        if self.dimensions:
            unknown = sorted(set(self.dimensions) - named)
            if unknown:
                raise ValueError(
                    f"dimensions= names {', '.join(map(repr, unknown))}, which no breakdown of {type(obj).__name__} "
                    f"counting these fields has; its dimensions are: {', '.join(sorted(named)) or 'none'}."
                )
        return grouped

    def send(self) -> bool:
        """Journal the events (or publish them); return False if filtered out, refused or captured."""
        grouped = self.build()  # bad input raises here, before anything is journaled or filtered
        if not self.should_send():
            return False
        grouped = self.screen(grouped)
        if not grouped:
            return False
        if settings.JOURNAL:
            if len(grouped) == 1:  # one data model (most sends): its list as it is
                return relay.append(next(iter(grouped.values())))
            return relay.append([event for events in grouped.values() for event in events])
        return delivery.deliver_grouped(grouped)


def _check_pk(route: Any, pk: Any, obj: models.Model) -> None:
    """Raise InvalidPrimaryKey when `pk` does not fit the route's data model."""
    problem = route.pk_limits.problem(pk)
    if problem is not None:
        raise InvalidPrimaryKey(f"Cannot track {type(obj).__name__} with pk {pk!r:.80}: {problem}.")


class IncrementMessage(TrackableMessage):
    """Add `amount` (default 1; negative to subtract) to one counter field."""

    def __init__(self, request: HttpRequest | None, obj: models.Model, field: str, amount: int = 1, **kwargs: Any):
        super().__init__(request, obj, **kwargs)
        self.field = field
        self.amount = amount

    def events(self) -> Iterable[tuple[str, int]]:
        return [(self.field, self.amount)]


class IncrementsMessage(TrackableMessage):
    """Add several amounts to several counter fields at once, e.g. {"plays": 1, "seconds_played": 94}."""

    def __init__(self, request: HttpRequest | None, obj: models.Model, increments: dict[str, int], **kwargs: Any):
        super().__init__(request, obj, **kwargs)
        self.increments = dict(increments)

    def events(self) -> Iterable[tuple[str, int]]:
        return list(self.increments.items())


def send_increment_message(
    request: HttpRequest | None,
    obj: models.Model,
    field: str,
    amount: int = 1,
    *,
    data_model: type[models.Model] | None = None,
    visitor: Any = None,
    dimensions: Mapping[str, Any] | None = None,
) -> bool:
    """Count `amount` (default 1) more of `field` for `obj`, out of band; return whether it was sent.

    The increment also counts in each breakdown of `obj` with that field, under the values of its
    dimensions for `request` (or those given in `dimensions`, e.g. {"referrer": "example.com"}).
    """
    return IncrementMessage(request, obj, field, amount, data_model=data_model, visitor=visitor, dimensions=dimensions).send()


def send_decrement_message(
    request: HttpRequest | None,
    obj: models.Model,
    field: str,
    amount: int = 1,
    *,
    data_model: type[models.Model] | None = None,
    visitor: Any = None,
    dimensions: Mapping[str, Any] | None = None,
) -> bool:
    """Count `amount` (default 1) less of `field` for `obj`, out of band; return whether it was sent."""
    return IncrementMessage(request, obj, field, -amount, data_model=data_model, visitor=visitor, dimensions=dimensions).send()


def send_message(
    request: HttpRequest | None,
    obj: models.Model,
    increments: dict[str, int],
    *,
    data_model: type[models.Model] | None = None,
    visitor: Any = None,
    dimensions: Mapping[str, Any] | None = None,
) -> bool:
    """Send several field increments for `obj` at once, e.g. {"plays": 1, "seconds_played": 94}."""
    return IncrementsMessage(request, obj, increments, data_model=data_model, visitor=visitor, dimensions=dimensions).send()
