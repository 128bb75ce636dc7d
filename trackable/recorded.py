"""Breakdown values computed off the request path: what a send records of its request, what the relay makes of it.

With the journal (the default), a send counted in breakdowns does not compute their values in the view.
It records, once, the few request parts their built-in sources read (the path, the Referer — cut at
its query string unless a ``search_terms`` breakdown needs that —, the host, the User-Agent, the
Accept-Language, a query string holding ``utm_`` parameters), each bounded in length, in one
*deferred* item; a custom source (a callable) still runs in the view, since only the view has the
request, and its value is recorded. The relay thread turns the item into one event per breakdown with
its dimension values (:func:`expand`), computed by the very same sources from the recorded parts,
before it aggregates and publishes them: the messages, the fold and exactly-once are those of values
computed in the view.

The item is ``{"b": {breakdown label: {custom dimension: value}}, "r": {part: text}, "x": {dimension:
explicit value}, "s": 1}`` ("x" only with ``dimensions=``, "s" only for a spider whose events some
breakdown counts apart), written by the view as JSON text (a journal.Fragment), not by the encoder.
It travels as the 7th item of the increment's plain event (its data model's), which then stands for
both, or of a *deferred* event ``["", parent label, pk, field, amount, ts, item]`` when there is no
plain event to carry it. The recorded parts stay in the process's journal until relayed (segments
are deleted once relayed); only the dimension values leave the host.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from json import JSONEncoder
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from django.http import HttpRequest, QueryDict

from trackable import dimensions, journal
from trackable.conf import settings
from trackable.sites import Route, site

__all__ = ["DEFERRED", "Recipe", "recipe", "capture", "item", "fragment", "detach", "mark_spider", "expand", "RecordedRequest"]

logger = logging.getLogger("trackable")

_dumps = JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False).encode
DEFERRED = ""  # the data label of a deferred event (no data model's label is empty)
MAX_PART_CHARS = 2000  # characters of a recorded part (the sources look at no more)
MAX_QUERY_CHARS = 8000  # characters of a query string recorded for the utm_ sources
MAX_HOST_CHARS = 300
MAX_LANGUAGE_CHARS = 100

# The request parts each built-in source reads: short keys of the record.
_PARTS: dict[Any, tuple[str, ...]] = {
    dimensions.path: ("p",),
    dimensions.referrer_host: ("r", "h"),
    dimensions.referrer: ("r", "h"),
    dimensions.search_terms: ("s",),
    dimensions.browser: ("a",),
    dimensions.platform: ("a",),
    dimensions.device: ("a",),
    dimensions.language: ("l",),
}
for _name in ("utm_source", "utm_medium", "utm_campaign"):
    _PARTS[dimensions.SOURCES[_name]] = ("q",)
_META = {"r": "HTTP_REFERER", "a": "HTTP_USER_AGENT", "l": "HTTP_ACCEPT_LANGUAGE", "q": "QUERY_STRING"}


# How each part is read: (its META key, or None for the path; the JSON text before its value; its bound,
# or None for TRACKABLE_USER_AGENT_MAX_LENGTH).
_READ = {
    "a": ("HTTP_USER_AGENT", '"a":', None),
    "h": ("HTTP_HOST", '"h":', MAX_HOST_CHARS),
    "l": ("HTTP_ACCEPT_LANGUAGE", '"l":', MAX_LANGUAGE_CHARS),
    "p": (None, '"p":', MAX_PART_CHARS),
    "q": ("QUERY_STRING", '"q":', MAX_QUERY_CHARS),
    "r": ("HTTP_REFERER", '"r":', MAX_PART_CHARS),  # cut at its query string (or fragment): see _member()
    "s": ("HTTP_REFERER", '"s":', MAX_PART_CHARS),  # whole: the search terms are in its query string
}


class Recipe:
    """What a send of one parent model's field records for its breakdowns (the breakdowns among `routes`)."""

    __slots__ = ("routes", "plain", "limits", "parts", "reads", "customs", "names", "fixed", "head", "lone")

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self.plain = tuple(route for route in routes if not route.dimensions)  # those the view counts itself
        breakdowns = [route for route in routes if route.dimensions]
        limits = {id(route.pk_limits): route for route in reversed(breakdowns)}
        #: a breakdown route of each distinct primary key limits (the view checks the pk against them)
        self.limits = tuple(limits.values())
        parts: set[str] = set()
        #: the breakdowns with custom sources (they run in the view): the JSON text that starts each one's
        #: member of "b", and its [(dimension, the dimension's JSON key text, source, max_length)]
        self.customs: list[tuple[str, list[tuple[str, str, Any, int]]]] = []
        plain = []  # the members of "b" of the others, always the same: "label":{}
        for route in breakdowns:
            own = []
            for name, source, max_length in route.dimensions:
                found = _PARTS.get(source)
                if found is None:
                    own.append((name, _quote(name) + ":", source, max_length))
                else:
                    parts.update(found)
            if own:
                self.customs.append((_quote(route.data_label) + ":{", own))
            else:
                plain.append(_quote(route.data_label) + ":{}")
        if "s" in parts:
            parts.discard("r")  # the whole referrer holds the one cut at its query string
        self.parts = tuple(sorted(parts))
        #: how item() reads each part: (part, its META key or None for the path, its texts seen)
        self.reads = tuple((part, _READ[part][0], _seen[part]) for part in self.parts)
        self.names = {name for route in breakdowns for name, _, _ in route.dimensions}
        #: the item's text up to the members of "b" of the breakdowns with custom sources (written per send)
        self.fixed = '{"b":{' + ",".join(plain) + ("," if plain and self.customs else "")
        self.head = self.fixed + '},"r":'  # the item's text before the parts, when no breakdown has a custom source
        #: the plain route whose event carries the item on a send without explicit values (the common
        #: send, which the view makes without a loop): set when the breakdowns' sources are all built-in,
        #: there is one plain route, whose events carry nothing else (no visitor), and every integer pk
        #: it takes without a check is one each breakdown takes too
        self.lone: Route | None = None
        if len(self.plain) == 1 and breakdowns and not self.customs and not self.plain[0].feeds_visitors:
            lone = self.plain[0]
            if all(route.int_low <= lone.int_low and lone.int_high <= route.int_high for route in self.limits):
                self.lone = lone


_recipes: dict[int, Recipe] = {}


def recipe(routes: tuple[Route, ...]) -> Recipe:
    """Return the Recipe of the breakdowns among `routes` (kept per tuple: the site's route cache holds them)."""
    found = _recipes.get(id(routes))
    if found is None or found.routes is not routes:
        if len(_recipes) > 10_000:
            _recipes.clear()
        found = _recipes[id(routes)] = Recipe(routes)
    return found


def capture(request: HttpRequest, found: Recipe) -> str:
    """Return the JSON text of the request's parts the recipe's sources read, each cut to its bound (absent ones left out)."""
    return item(request, found).text[len(found.head) : -1]


# The member text ('"a":"Mozilla/5.0 ..."', or "" where nothing is recorded) of each part's values seen,
# per part: a site's user agents, hosts, paths and most referrers are seen again and again. At most
# MAX_SEEN values per part (forgotten all at once); longer values than MAX_KEPT_CHARS are written each time.
_seen: dict[str, dict[Any, str]] = {part: {} for part in _READ}
MAX_SEEN = 1000
MAX_KEPT_CHARS = 300


def item(request: HttpRequest, found: Recipe) -> journal.Fragment:
    """Return the item of a send whose breakdowns read built-in sources only, without explicit values.

    For the other sends capture() takes the text of the parts from it (its head is then cut off).
    """
    meta = request.META
    members = []
    for part, key, seen in found.reads:
        value = request.path if key is None else meta.get(key)
        try:
            text = seen.get(value)
        except TypeError:  # not a string (nor hashable): see _member()
            text = None
        if text is None:
            text = _member(request, part, value, seen)
        if text:
            members.append(text)
    return journal.Fragment(f"{found.head}{{{','.join(members)}}}}}")


def _member(request: HttpRequest, part: str, value: Any, seen: dict[Any, str]) -> str:
    """Return the member text of one part of the request ("" when it is not recorded); remember it."""
    _, start, limit = _READ[part]
    raw = value
    if not value:
        value = request.META.get("SERVER_NAME") if part == "h" else None  # as Django's get_host() falls back
        if not value:
            return ""
    elif part == "q" and type(value) is str and "utm_" not in value and "%" not in value:
        value = ""  # the utm_ sources find nothing in it
    elif part == "r" and type(value) is str:
        value = _without_query(value)  # what may hold tokens or e-mail addresses is not written
    if type(value) is not str:
        value = str(value)
    text = value and start + _quote(value[: settings.USER_AGENT_MAX_LENGTH if limit is None else limit])
    if type(raw) is str and raw and len(raw) <= MAX_KEPT_CHARS:
        if len(seen) >= MAX_SEEN:
            seen.clear()
        seen[raw] = text
    return text


def forget() -> None:
    """Forget the texts of the parts seen (a setting they depend on changed)."""
    for seen in _seen.values():
        seen.clear()


def _without_query(url: str) -> str:
    end = len(url)
    for mark in "?#":
        at = url.find(mark, 0, end)
        if at >= 0:
            end = at
    return url[:end]


def fragment(
    request: HttpRequest,
    found: Recipe,
    parts: str,
    explicit: Mapping[str, Any] | None,
    computed: dict[Any, Any],
) -> journal.Fragment:
    """Return the 7th item of the deferred event of one field's increment, written as JSON text.

    `parts` is the text capture() made of the request.
    """
    if not found.customs and not explicit:  # built-in sources only: the same text around the parts
        return journal.Fragment(found.head + parts + "}")
    text = found.fixed
    if found.customs:
        texts = []
        for start, own in found.customs:
            members = []
            for name, key, source, max_length in own:
                if explicit is not None and name in explicit:
                    continue  # the explicit value wins: the source need not run
                value = computed[source] if source in computed else computed.setdefault(source, source(request))
                members.append(key + _quote(dimensions.normalise(value, max_length)))
            texts.append(start + ",".join(members) + "}")
        text += ",".join(texts)
    text += '},"r":'
    text += parts
    if explicit:
        chosen = {
            name: None if value is None else (value if isinstance(value, str) else str(value))[:MAX_PART_CHARS]
            for name, value in explicit.items()
            if name in found.names
        }
        text += ',"x":' + _dumps(chosen)
    return journal.Fragment(text + "}")


def detach(grouped: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Take the deferred items off the events of `grouped` (in place); return them as deferred events."""
    deferred = grouped.pop(DEFERRED, [])
    for events in grouped.values():
        for i, event in enumerate(events):
            if len(event) == 7 and type(event[6]) is journal.Fragment:
                events[i] = event[:6]
                deferred.append((DEFERRED, *event[1:]))
    return deferred


def mark_spider(event: tuple[Any, ...]) -> bool:
    """Mark a deferred event as a spider's; return False when none of its breakdowns counts spiders apart."""
    field, fragment = event[3], event[6]
    for label in fragment.value()["b"]:
        model = site.get_data_model(label)
        if field in (getattr(model, "spider_fields", None) or {}):
            fragment.text = fragment.text[:-1] + ',"s":1}'
            return True
    return False


class RecordedRequest:
    """The parts of a request a send recorded, shaped as the built-in sources read a request."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.path = raw.get("p", "")
        meta = {_META[part]: raw[part] for part in _META if part in raw}
        if "h" in raw:
            meta["HTTP_HOST"] = raw["h"]
        if "s" in raw:
            meta["HTTP_REFERER"] = raw["s"]
        self.META = meta
        self._get: QueryDict | None = None

    @property
    def GET(self) -> QueryDict:  # noqa: N802 - the name HttpRequest gives it
        if self._get is None:
            self._get = QueryDict(self.META.get("QUERY_STRING", ""))
        return self._get


def _valid(extra: dict[str, Any]) -> bool:
    raw, breakdowns, explicit = extra.get("r"), extra.get("b"), extra.get("x")
    return (
        type(raw) is dict
        and type(breakdowns) is dict
        and all(type(v) is str for v in raw.values())
        and all(type(v) is dict for v in breakdowns.values())
        and (explicit is None or type(explicit) is dict)
    )


def expand(events: list[list[Any]], left_out: Callable[[int], None] | None = None) -> list[list[Any]]:
    """Return `events` with each deferred item replaced by its breakdowns' events (their dimension values).

    A breakdown event that cannot be computed (its breakdown no longer registered, an item this version
    does not read, a source that fails) is left out, and the reasons logged once per batch with their
    counts, and their number passed to `left_out`; the rest of the batch is relayed (a bad record must
    not stop the relay in a crash loop).
    A breakdown's values are computed once per distinct set of the parts its sources read, and kept for
    the next events (a site's user agents and referrers repeat; at most MAX_MEMO sets).
    """
    if not any(len(event) == 7 and type(event[6]) is dict and "b" in event[6] for event in events):
        return events
    out: list[list[Any]] = []
    reasons: dict[str, int] = {}
    batch = _Batch(reasons)
    for event in events:
        if len(event) != 7 or type(event[6]) is not dict or "b" not in event[6]:
            out.append(event)
            continue
        if event[0] != DEFERRED:
            out.append(event[:6])  # the event the breakdowns travelled with: counted as it is
        try:
            batch.expand(event, out)
        except Exception as err:  # noqa: BLE001 - see above
            _left_out(reasons, err)
    if reasons:
        logger.error(
            "The relay left out %d breakdown events it could not compute: %s.",
            sum(reasons.values()),
            "; ".join(f"{reason} ({n})" for reason, n in reasons.items()),
        )
        if left_out is not None:
            left_out(sum(reasons.values()))
    return out


# (id of a breakdown's route, the parts its sources read) → (the route, the event's {"d": values}): a site's
# user agents and referrers repeat, so most breakdown events of a relay are a look-up. The route is kept
# to tell a new route that got the id of a forgotten one.
_memo: dict[tuple, tuple[Route, dict[str, Any]]] = {}
MAX_MEMO = 4096


class _Batch:
    """The expansion of one batch: routes resolved once per kind of item, values once per distinct parts."""

    def __init__(self, reasons: dict[str, int]) -> None:
        self.reasons = reasons
        # (parent label, field, breakdown labels, spider) → [(label, field counted, route, parts read)]
        self.plans: dict[tuple, list[tuple[str, str, Route | None, tuple[str, ...]]]] = {}

    def plan(
        self, parent_label: str, field: str, labels: tuple[str, ...], spider: bool
    ) -> list[tuple[str, str, Route | None, tuple[str, ...]]]:
        from django.apps import apps

        parent = apps.get_model(parent_label)
        plan: list[tuple[str, str, Route | None, tuple[str, ...]]] = []
        for label in labels:
            try:
                model = site.get_data_model(label)
                if model is None:
                    raise LookupError(f"{label} is not a registered data model")
                route = site.route(parent, field, model)
            except Exception as err:  # noqa: BLE001 - the other breakdowns of the send are still counted
                plan.append((label, _reason(err, self.reasons), None, ()))  # left out, for each send, with this reason
                continue
            mapped = (getattr(model, "spider_fields", None) or {}).get(field) if spider else field
            if mapped is None:
                continue  # this breakdown does not count spiders
            read = {part for _, source, _ in route.dimensions for part in _PARTS.get(source, ())}
            if "s" in read or "r" in read:
                read.update("rs")  # a referrer source reads whichever of the two the send recorded
            plan.append((label, mapped, route, tuple(sorted(read))))
        return plan

    def expand(self, event: list[Any], out: list[list[Any]]) -> None:
        _, parent_label, pk, field, amount, ts, extra = event
        if not _valid(extra):
            raise ValueError("a deferred item this version does not write")
        breakdowns, raw, explicit = extra["b"], extra["r"], extra.get("x")
        key = (parent_label, field, tuple(breakdowns), extra.get("s") == 1)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self.plan(*key)
        request: RecordedRequest | None = None
        computed: dict[Any, Any] = {}
        for label, mapped, route, read in plan:
            if route is None:  # `mapped` holds the reason
                self.reasons[mapped] = self.reasons.get(mapped, 0) + 1
                continue
            customs = breakdowns[label]
            try:
                if not customs and explicit is None:  # built-in sources only: the same parts, the same values
                    memo = (id(route), *[raw.get(part) for part in read])
                    found = _memo.get(memo)
                    if found is not None and found[0] is route:
                        item = found[1]
                    else:
                        if request is None:
                            request = RecordedRequest(raw)
                        item = {"d": _values(route, request, None, customs, computed)}
                        if len(_memo) >= MAX_MEMO:
                            _memo.clear()
                        _memo[memo] = (route, item)
                else:
                    if request is None:
                        request = RecordedRequest(raw)
                    item = {"d": _values(route, request, explicit, customs, computed)}
            except Exception as err:  # noqa: BLE001 - the other breakdowns of the send are still counted
                _left_out(self.reasons, err)
                continue
            out.append([label, parent_label, pk, mapped, amount, ts, item])


def _reason(err: Exception, reasons: dict[str, int]) -> str:
    """Return why a breakdown event was left out; log the traceback of an unexpected error (a bug) once a batch."""
    if isinstance(err, (LookupError, ValueError)):
        return str(err)[:200]
    reason = f"{type(err).__name__}: {str(err)[:200]}"
    if reason not in reasons:
        logger.error("The relay could not compute a breakdown event.", exc_info=err)
    return reason


def _left_out(reasons: dict[str, int], err: Exception) -> None:
    reason = _reason(err, reasons)
    reasons[reason] = reasons.get(reason, 0) + 1


def _values(
    route: Route, request: RecordedRequest, explicit: Any, customs: Mapping[str, Any], computed: dict[Any, Any]
) -> dict[str, str]:
    """Return the route's dimension values: the view's for custom sources, the sources' own for the built-in ones."""
    for name, source, _ in route.dimensions:
        if source not in _PARTS:
            computed[source] = customs.get(name)  # ran in the view, which recorded its value
    return dimensions.values_for(request, route.dimensions, explicit, computed)  # type: ignore[arg-type]
