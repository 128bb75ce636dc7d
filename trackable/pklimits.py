"""Which primary keys a column can hold, computed from the model fields, never from the database.

Every check of a parent's primary key goes through here, so a value is refused for the same reason in
the same words wherever it turns up: the producer before it sends (TrackableMessage.build), the fold
before it writes, the importers before they add a line to a chunk, and the API before it queries. A
value that passes a field's ``to_python`` can still be refused by the database: an integer beyond its
column's range, a string longer than ``object_id``'s ``max_length`` (which PostgreSQL's varchar cast
would silently truncate) or one holding a NUL character. ``PkLimits.problem`` says why, in a sentence
fragment that names the column that sets the limit.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import models

__all__ = ["INTEGER_RANGES", "PkLimits", "pk_limits", "WIRE_MAX_PK_LENGTH"]

# A string pk longer than this never travels (see trackable.messages).
WIRE_MAX_PK_LENGTH = 255
STRING_TYPES = frozenset({"CharField", "SlugField", "TextField"})
_DECIMAL = re.compile(r"-?[0-9]{1,40}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
#: The ranges every supported database accepts, by Django internal type (the strictest of them).
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "SmallIntegerField": (-(2**15), 2**15 - 1),
    "SmallAutoField": (-(2**15), 2**15 - 1),
    "PositiveSmallIntegerField": (0, 2**15 - 1),
    "IntegerField": _INT32,
    "AutoField": _INT32,
    "PositiveIntegerField": (0, 2**31 - 1),
    "BigIntegerField": _INT64,
    "BigAutoField": _INT64,
    "PositiveBigIntegerField": (0, 2**63 - 1),
}


def _pk_field(model: type[models.Model]) -> models.Field:
    pk = model._meta.pk
    assert pk is not None  # every concrete model has one
    return pk.target_field if pk.is_relation else pk


@dataclass(frozen=True)
class PkLimits:
    """The primary keys of one parent model that a column (one data model's ``object_id``) can hold."""

    kind: str  # "int", "uuid" or "str"
    low: int | None = None
    high: int | None = None
    max_length: int = WIRE_MAX_PK_LENGTH
    holder: str = ""  # what sets the limit, for the error sentence

    def problem(self, pk: Any, *, printable: bool = False) -> str | None:
        """Return why `pk` cannot be stored (a sentence fragment naming the limit), or None if it can.

        With `printable`, any control character is refused (where a pk comes from a URL or a log line),
        not only the NUL a database refuses.
        """
        if pk is None or pk == "":
            return "a primary key cannot be empty"
        if isinstance(pk, uuid.UUID):
            return None if self.kind == "uuid" else f"{self.holder} does not hold UUIDs"
        if isinstance(pk, bool) or not isinstance(pk, (int, str)):
            return f"a primary key must be an integer or a string, not {type(pk).__name__}"
        if self.kind == "int":
            return self._int_problem(pk)
        text = str(pk)
        if self.kind == "uuid":
            try:
                uuid.UUID(text)
            except ValueError:
                return f"{self.holder} holds UUIDs and {text[:80]!r} is not one"
            return None
        if "\x00" in text:
            return f"{self.holder} cannot hold a NUL character"
        if printable and _CONTROL.search(text):
            return "a primary key cannot hold a control character (newline, tab, ...) here"
        if len(text) > self.max_length:
            return f"{self.holder} holds at most {self.max_length} characters"
        return None

    def int_range(self) -> tuple[int, int] | None:
        """Return (low, high) when every int in it can be stored (the length bound included), else None."""
        if self.kind != "int" or self.low is None or self.high is None:
            return None
        if max(len(str(self.low)), len(str(self.high))) > self.max_length:
            return None
        return self.low, self.high

    def _int_problem(self, pk: int | str) -> str | None:
        if isinstance(pk, str):
            if not _DECIMAL.fullmatch(pk):
                return f"{self.holder} holds integers and {pk[:80]!r} is not one"
            pk = int(pk)
        if self.low is not None and self.high is not None and not self.low <= pk <= self.high:
            return f"{self.holder} holds integers from {self.low} to {self.high}"
        if self.max_length < len(str(pk)):
            return f"{self.holder} holds at most {self.max_length} characters"
        return None


@cache
def pk_limits(parent: type[models.Model], data_model: type[models.Model] | None = None) -> PkLimits:
    """Return the PkLimits of `parent`'s primary keys, as stored in `data_model`'s ``object_id`` if given."""
    pk = _pk_field(parent)
    pk_type = pk.get_internal_type()
    pk_name = f"{parent.__name__}.{pk.name} ({pk_type})"
    oid = pk if data_model is None else data_model._meta.get_field("object_id")
    oid_type = oid.get_internal_type()
    oid_name = pk_name if data_model is None else f"{data_model.__name__}.object_id ({oid_type})"
    if oid_type == "UUIDField" or pk_type == "UUIDField":
        return PkLimits("uuid", holder=oid_name)
    max_length = min(WIRE_MAX_PK_LENGTH, getattr(oid, "max_length", None) or WIRE_MAX_PK_LENGTH)
    pk_range, oid_range = INTEGER_RANGES.get(pk_type), INTEGER_RANGES.get(oid_type)
    if pk_range is None:  # a string pk
        return PkLimits("str", max_length=max_length, holder=oid_name if oid_type in STRING_TYPES else pk_name)
    if oid_range is None:  # an integer pk kept in a string column: the column's length bounds its digits
        holder = oid_name if getattr(oid, "max_length", None) else pk_name
        return PkLimits("int", *pk_range, max_length=max_length, holder=holder)
    low, high = max(pk_range[0], oid_range[0]), min(pk_range[1], oid_range[1])
    return PkLimits("int", low, high, holder=pk_name if (low, high) == pk_range else oid_name)
