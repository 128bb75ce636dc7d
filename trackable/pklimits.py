"""What a parent's primary key may be on the wire: computed from the model fields, never from the database.

The producer checks a pk before it sends (TrackableMessage.build) and the fold checks it again before it
writes, with the same PkLimits, so a value that a column cannot hold (an integer beyond its range, a
string longer than ``object_id``'s ``max_length`` — which PostgreSQL's varchar cast would silently
truncate — or one holding a NUL character) is refused with a sentence instead of failing in SQL.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import models

__all__ = ["PkLimits", "pk_limits", "WIRE_MAX_PK_LENGTH"]

# A string pk longer than this never travels (see trackable.messages).
WIRE_MAX_PK_LENGTH = 255
STRING_TYPES = frozenset({"CharField", "SlugField", "TextField"})
_DECIMAL = re.compile(r"-?[0-9]{1,40}")


def _integer_range(internal_type: str) -> tuple[int, int] | None:
    # The base ranges (no connection needed): what Django itself checks for these fields on every backend.
    from django.db.backends.base.operations import BaseDatabaseOperations

    return BaseDatabaseOperations.integer_field_ranges.get(internal_type)


def _pk_field(model: type[models.Model]) -> models.Field:
    pk = model._meta.pk
    return pk.target_field if pk.is_relation else pk


@dataclass(frozen=True)
class PkLimits:
    """The primary keys of one parent model that one data model's ``object_id`` can hold."""

    kind: str  # "int", "uuid" or "str"
    low: int | None = None
    high: int | None = None
    max_length: int = WIRE_MAX_PK_LENGTH
    holder: str = ""  # what sets the limit, for the error sentence

    def problem(self, pk: Any) -> str | None:
        """Return why `pk` cannot be stored (a sentence fragment naming the limit), or None if it can."""
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
        if not text:
            return "an empty primary key cannot be stored"
        if "\x00" in text:
            return f"{self.holder} cannot hold a NUL character"
        if len(text) > self.max_length:
            return f"it is {len(text)} characters long and {self.holder} holds at most {self.max_length}"
        return None

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


@lru_cache(maxsize=None)
def pk_limits(parent: type[models.Model], data_model: type[models.Model]) -> PkLimits:
    """Return the PkLimits of `parent`'s primary keys stored in `data_model`'s ``object_id``."""
    pk = _pk_field(parent)
    oid = data_model._meta.get_field("object_id")
    pk_type, oid_type = pk.get_internal_type(), oid.get_internal_type()
    pk_name = f"{parent.__name__}.{pk.name} ({pk_type})"
    oid_name = f"{data_model.__name__}.object_id ({oid_type})"
    if oid_type == "UUIDField" or pk_type == "UUIDField":
        return PkLimits("uuid", holder=oid_name)
    max_length = min(WIRE_MAX_PK_LENGTH, oid.max_length or WIRE_MAX_PK_LENGTH)
    pk_range, oid_range = _integer_range(pk_type), _integer_range(oid_type)
    if pk_range is None:  # a string pk
        return PkLimits("str", max_length=max_length, holder=oid_name if oid_type in STRING_TYPES else pk_name)
    if oid_range is None:  # an integer pk kept in a string column: the column's length bounds its digits
        return PkLimits("int", *pk_range, max_length=max_length, holder=oid_name if oid.max_length else pk_name)
    low, high = max(pk_range[0], oid_range[0]), min(pk_range[1], oid_range[1])
    holder = pk_name if (low, high) == pk_range else oid_name
    return PkLimits("int", low, high, holder=holder)
