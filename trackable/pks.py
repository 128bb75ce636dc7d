"""Pure checks of primary-key values against the column that will hold them (no database round trip).

A value that passes a field's `to_python` can still be refused by the database (an integer beyond the
column's range, a NUL in a string, a string longer than `max_length`, which PostgreSQL may even cut
silently). `pk_problem(field, value)` says why, before anything is written or queried.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

__all__ = ["INTEGER_RANGES", "pk_problem", "clean_pk"]

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


def pk_problem(field: models.Field, value: Any) -> str | None:
    """Return why `value` (already converted by `field.to_python`) cannot be stored in `field`, or None.

    The reason completes "the primary key ...", e.g. "is outside the range 1..9 of its AutoField column";
    it never quotes the value, so it can serve as a category when counting skipped lines.
    """
    if value is None or value == "":
        return "is empty"
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = INTEGER_RANGES.get(field.get_internal_type(), _INT64)
        if not low <= value <= high:
            return f"is outside the range {low}..{high} of its {field.get_internal_type()} column"
    elif isinstance(value, str):
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return "holds a control character (NUL, newline, ...)"
        if field.max_length is not None and len(value) > field.max_length:
            return f"is longer than the {field.max_length} characters of its column"
    return None


def clean_pk(field: models.Field, raw: Any) -> Any:
    """Return `raw` converted by `field`; raise ValueError with the reason if it cannot be stored there."""
    try:
        value = field.to_python(raw)
    except (ValidationError, TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{str(raw)[:80]!r} is not a primary key of this model") from err
    problem = pk_problem(field, value)
    if problem:
        raise ValueError(f"the primary key {problem}")
    return value
