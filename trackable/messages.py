"""The wire format: build and parse a message. JSON only, versioned, validated; no ORM, no kombu.

A message is one JSON object::

    {"v": 1, "id": "<32 hex digits>", "e": [[data_label, parent_label, parent_pk, field, amount, ts_ms], ...]}

`e` holds one or more events; `ts_ms` is the event time in milliseconds since the Unix epoch (UTC).
An event may carry a 7th item, an object of extras: ``{"u": "<16 hex digits>"}`` is the keyed hash of
the visitor (trackable.visitors) that the data model's UniqueVisitors fields count; ``{"u": [...]}``
carries up to MAX_VISITORS distinct ones (the relay's form: the visitors of one counter, object and
minute of a batch). ``{"d": {"<dimension>": "<value>", ...}}`` holds the values of a breakdown's
Dimension fields (strings of at most MAX_DIMENSION_CHARS characters, no NUL; the fold checks the names
and the column lengths). Only known keys are accepted; 6-item events stay valid.
"""
from __future__ import annotations

import json
import os
import re
import time
from typing import Any, NamedTuple

from trackable.exceptions import MalformedMessage

__all__ = ["VERSION", "CONTENT_TYPE", "Event", "Message", "build", "new_id", "parse"]

VERSION = 1
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
MAX_EVENTS = 100_000
MAX_AMOUNT = 2**31 - 1
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_VISITORS = 1000  # visitor hashes one event may carry
MAX_DIMENSIONS = 8  # dimension values one event may carry
MAX_DIMENSION_CHARS = 1000

# Matched with fullmatch: "$" would also accept a trailing newline.
_LABEL = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_ID = re.compile(r"[0-9a-f]{32}")
_VISITOR = re.compile(r"[0-9a-f]{16}")
_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False).encode


class Event(NamedTuple):
    """One increment of one counter field of one parent object at one moment."""

    data_label: str
    parent_label: str
    pk: int | str
    field: str
    amount: int
    ts_ms: int
    extras: dict[str, Any] | None = None  # the optional 7th item: {"u": hash or list of hashes}, {"d": dimension values}


class Message(NamedTuple):
    """A parsed message: its id and its events."""

    id: str
    events: list[Event]


def new_id() -> str:
    """Return a fresh message id: 32 lowercase hex digits, the first 12 the milliseconds since 1970.

    Ids made later sort later (as a UUIDv7's do), so the fold's ledger adds them at the end of its
    index instead of all over it; the other 80 bits are random (urandom, as uuid4's).
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def build(events: list[tuple[str, str, Any, str, int, int]], message_id: str | None = None) -> bytes:
    """Return the JSON body of a message carrying `events`."""
    return _dumps({"v": VERSION, "id": message_id or new_id(), "e": events}).encode("ascii")


def parse(body: bytes | str, max_bytes: int = 1024 * 1024) -> Message:
    """Return the Message in `body`, or raise MalformedMessage saying what is wrong with it."""
    if len(body) > max_bytes:
        raise MalformedMessage(f"body is {len(body)} bytes, over the limit of {max_bytes}")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedMessage(f"body is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise MalformedMessage(f"body is a JSON {type(data).__name__}, not an object")
    if set(data) != {"v", "id", "e"}:
        raise MalformedMessage(f"keys are {sorted(map(str, data))}, expected ['e', 'id', 'v']")
    if data["v"] != VERSION or isinstance(data["v"], bool):
        raise MalformedMessage(f"version is {data['v']!r}, this folder reads version {VERSION}")
    message_id = data["id"]
    if not isinstance(message_id, str) or not _ID.fullmatch(message_id):
        raise MalformedMessage("id is not 32 lowercase hex digits")
    raw_events = data["e"]
    if not isinstance(raw_events, list) or not raw_events:
        raise MalformedMessage("e is not a non-empty list of events")
    if len(raw_events) > MAX_EVENTS:
        raise MalformedMessage(f"e holds {len(raw_events)} events, over the limit of {MAX_EVENTS}")
    return Message(message_id, [_parse_event(i, raw) for i, raw in enumerate(raw_events)])


# Label and field triples that passed the checks below; a message repeats a few of them many times.
_checked_names: set[tuple[Any, Any, Any]] = set()
_CHECKED_NAMES_MAX = 10_000


def _parse_visitor(index: int, value: Any) -> str | list[str]:
    """Check one visitor hash, or a list of 1 to MAX_VISITORS of them."""
    if isinstance(value, list):
        if not 0 < len(value) <= MAX_VISITORS:
            raise MalformedMessage(f"event {index}: the visitors are a list of {len(value)}, not of 1 to {MAX_VISITORS}")
        for item in value:
            if not isinstance(item, str) or not _VISITOR.fullmatch(item):
                raise MalformedMessage(f"event {index}: visitor {str(item)[:80]!r} is not 16 lowercase hex digits")
        return value
    if not isinstance(value, str) or not _VISITOR.fullmatch(value):
        raise MalformedMessage(f"event {index}: visitor {str(value)[:80]!r} is not 16 lowercase hex digits")
    return value


def _parse_dimensions(index: int, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_DIMENSIONS:
        raise MalformedMessage(f"event {index}: dimensions are not an object of 1 to {MAX_DIMENSIONS} values")
    for name, text in value.items():
        if not _FIELD.fullmatch(name):
            raise MalformedMessage(f"event {index}: dimension {name[:80]!r} is not a field name")
        if not isinstance(text, str):
            raise MalformedMessage(f"event {index}: dimension {name} is not a string but {type(text).__name__}")
        if len(text) > MAX_DIMENSION_CHARS:
            raise MalformedMessage(f"event {index}: dimension {name} holds {len(text)} characters, over {MAX_DIMENSION_CHARS}")
        if "\x00" in text:
            raise MalformedMessage(f"event {index}: dimension {name} holds a NUL character")
    return value


# The keys an event's extras may hold, each with the function that checks its value.
_EXTRAS = {"u": _parse_visitor, "d": _parse_dimensions}


def _parse_extras(index: int, raw: Any) -> dict[str, Any]:
    if type(raw) is dict and len(raw) == 1:  # the common case, one visitor: checked without a new dict
        visitor = raw.get("u")
        if type(visitor) is str and _VISITOR.fullmatch(visitor):
            return raw
    if not isinstance(raw, dict) or not raw:
        raise MalformedMessage(f"event {index}: the 7th item is not a non-empty object of extras")
    unknown = [str(key)[:20] for key in raw if key not in _EXTRAS]
    if unknown:
        raise MalformedMessage(f"event {index}: extras {sorted(unknown)} are unknown; known: {sorted(_EXTRAS)}")
    return {key: _EXTRAS[key](index, value) for key, value in raw.items()}


def _parse_event(index: int, raw: Any) -> Event:
    # The common event (exact types, names seen before, values in range) passes the same checks as below
    # in one expression; anything else takes the long way, which names what is wrong.
    if type(raw) is list and 6 <= len(raw) <= 7:
        data_label, parent_label, pk, field, amount, ts_ms = raw[:6]
        if (
            type(pk) is int
            and type(amount) is int
            and type(ts_ms) is int
            and type(data_label) is str
            and type(parent_label) is str
            and type(field) is str
            and 0 < abs(amount) <= MAX_AMOUNT
            and MIN_TS_MS <= ts_ms < MAX_TS_MS
            and (data_label, parent_label, field) in _checked_names
        ):
            if len(raw) == 6:
                return Event(data_label, parent_label, pk, field, amount, ts_ms, None)
            extras = raw[6]  # the short path takes one visitor hash or the relay's list of them
            visitor = extras.get("u") if type(extras) is dict and len(extras) == 1 else None
            if type(visitor) is str:
                if _VISITOR.fullmatch(visitor):
                    return Event(data_label, parent_label, pk, field, amount, ts_ms, extras)
            elif (
                type(visitor) is list
                and 0 < len(visitor) <= MAX_VISITORS
                and all(type(v) is str and _VISITOR.fullmatch(v) for v in visitor)
            ):
                return Event(data_label, parent_label, pk, field, amount, ts_ms, extras)
    if not isinstance(raw, list) or len(raw) not in (6, 7):
        raise MalformedMessage(f"event {index} is not a list of 6 items (7 with extras)")
    extras = _parse_extras(index, raw[6]) if len(raw) == 7 else None
    data_label, parent_label, pk, field, amount, ts_ms = raw[:6]
    names = (data_label, parent_label, field)
    # Names already checked cannot fail their checks, so skipping them keeps every error message the same.
    known = type(data_label) is str and type(parent_label) is str and type(field) is str and names in _checked_names
    if not known:
        for name, label in (("data model", data_label), ("parent model", parent_label)):
            if not isinstance(label, str) or len(label) > 200 or not _LABEL.fullmatch(label):
                raise MalformedMessage(f"event {index}: {name} label {str(label)[:80]!r} is not 'app_label.model'")
    if isinstance(pk, bool) or not isinstance(pk, (int, str)) or (isinstance(pk, str) and not 0 < len(pk) <= 255):
        raise MalformedMessage(f"event {index}: parent pk {str(pk)[:80]!r} is not an integer or a short string")
    if not known:
        if not isinstance(field, str) or not _FIELD.fullmatch(field):
            raise MalformedMessage(f"event {index}: field {str(field)[:80]!r} is not a field name")
        if len(_checked_names) < _CHECKED_NAMES_MAX:
            _checked_names.add(names)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < abs(amount) <= MAX_AMOUNT:
        raise MalformedMessage(f"event {index}: amount {str(amount)[:80]!r} is not a non-zero integer within ±{MAX_AMOUNT}")
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int) or not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise MalformedMessage(f"event {index}: timestamp {str(ts_ms)[:80]!r} is not milliseconds between 2000 and 2100")
    return Event(data_label, parent_label, pk, field, amount, ts_ms, extras)
