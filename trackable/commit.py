"""Commit a validated batch (ledger ids + upserts in one transaction) and isolate what the database refuses.

A message can pass every check and still be refused by the database: a counter that would overflow
its column, a value a backend cannot take. One such message must not roll back its batch forever, so
a refused batch is tried again in halves, each in its own transaction, until the refused messages stand
alone; those are returned with the database's reason (the fold dead-letters them) and the rest commits.
An outage (the connection lost, a locked database) is not a refusal: it propagates and nothing is acked.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import DataError, IntegrityError, connections, models, transaction
from django.utils import timezone as dj_timezone

from trackable import ledger
from trackable.fields import is_breakdown, unique_fields
from trackable.upsert import CounterOverflow, field_range, upsert_increments

__all__ = ["Committed", "commit_isolating", "REPLAY_HINT"]

LEDGER_RETRIES = 5
# Errors that belong to the data of a message, not to the state of the database.
REFUSALS = (DataError, IntegrityError, OverflowError, CounterOverflow)
REPLAY_HINT = "manage.py fold_trackable_messages --replay-dead-letters"
BIGGER = {
    "PositiveSmallIntegerField": "PositiveBigIntegerField",
    "PositiveIntegerField": "PositiveBigIntegerField",
    "SmallIntegerField": "BigIntegerField",
    "IntegerField": "BigIntegerField",
}


@dataclass
class Committed:
    """What the commits of one batch did: items are (raw, parsed message, row tuples) as the fold builds them."""

    fresh: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)
    rows: int = 0
    refused: list[tuple[Any, str]] = field(default_factory=list)  # (raw, reason)


def commit_isolating(items: list, db: str) -> Committed:
    """Commit `items`; isolate and return those the database refuses, with its reason."""
    done = Committed()
    pending = [items] if items else []
    while pending:
        part = pending.pop()
        try:
            _commit_once(part, db, done)
        except REFUSALS as err:
            if len(part) == 1:
                done.refused.append((part[0][0], refusal_reason(part[0], err)))
            else:
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]  # the first half is tried first
    return done


def _commit_once(items: list, db: str, done: Committed) -> None:
    """Claim the ids and add the increments of `items` in one transaction (retried after a ledger race)."""
    for attempt in range(LEDGER_RETRIES):
        seen = ledger.seen_before(db, [parsed.id for _, parsed, _ in items])
        try:
            with transaction.atomic(using=db):
                fresh, dupes = _claim(items, db, seen)
                rows = _upsert(fresh, db)
            break
        except IntegrityError:
            # Another worker committed some of these ids after we looked: look again, never count twice.
            if attempt == LEDGER_RETRIES - 1:
                raise
    done.fresh += fresh
    done.duplicates += dupes
    done.rows += rows


def _claim(items: list, db: str, seen: set[str] | None) -> tuple[list, list]:
    """Record the new ids in the ledger; return (fresh, duplicates), both in batch order."""
    new = ledger.claim_ids(db, [parsed.id for _, parsed, _ in items], dj_timezone.now(), seen)
    fresh, dupes = [], []
    for item in items:
        message_id = item[1].id
        if message_id in new:
            new.discard(message_id)  # a second copy inside the same batch is a duplicate
            fresh.append(item)
        else:
            dupes.append(item)
    return fresh, dupes


def _upsert(fresh: list, db: str) -> int:
    """Add the increments of `fresh` messages: one upsert per data model, in a consistent lock order."""
    if not fresh:
        return 0
    totals: dict[type[models.Model], dict[tuple, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    # {data model: {row key: {counter: visitor hashes}}}
    visits: dict[type[models.Model], dict[tuple, dict[str, set[str]]]] = defaultdict(lambda: defaultdict(dict))
    for _, _, rows in fresh:
        for dm, key, field_name, amount, visitor in rows:
            totals[dm][key][field_name] += amount
            if visitor is not None and amount > 0 and unique_fields(dm):
                by_counter = visits[dm][key]
                hashes = by_counter.get(field_name)
                if hashes is None:
                    hashes = by_counter[field_name] = set()
                if type(visitor) is str:
                    hashes.add(visitor)
                else:  # the relay's form: the distinct visitors of a batch's counter, object and minute
                    hashes.update(visitor)
    connection = connections[db]
    count = 0
    for dm in sorted(totals, key=lambda m: m._meta.label_lower):
        rows = totals[dm]
        if is_breakdown(dm):  # values beyond the cap go to "(other)", decided under the group's lock
            from trackable.cardinality import cap_values

            rows = cap_values(connection, dm, rows)
        if dm in visits:
            from trackable import sketches

            if sketches.folds_in_one_pass(connection, dm):  # counters and sketches in one write per row
                count += sketches.upsert_with_visits(connection, dm, rows, visits[dm])
                continue
            count += upsert_increments(connection, dm, rows)
            sketches.merge_visits(connection, dm, visits[dm])  # the upsert created and locked the rows
            continue
        count += upsert_increments(connection, dm, rows)
    return count


def refusal_reason(item: tuple, err: BaseException) -> str:
    """Return why the database refused one message: an overflow names the field and the fix."""
    detail = " ".join(str(err).split())[:300] or type(err).__name__
    sqlstate = getattr(err.__cause__, "sqlstate", None) or getattr(err.__cause__, "pgcode", None)
    if not isinstance(err, (CounterOverflow, OverflowError)) and sqlstate != "22003":
        return f"the database refused it: {detail}"
    totals: dict[tuple[type, str], int] = defaultdict(int)
    for dm, _, field_name, amount, _ in item[2]:
        totals[(dm, field_name)] += amount
    return "; ".join(_overflow_sentence(dm, name, amount) for (dm, name), amount in totals.items()) + f" ({detail})"


def _overflow_sentence(dm: type[models.Model], name: str, amount: int) -> str:
    internal = dm._meta.get_field(name).get_internal_type()
    low, high = field_range(internal)
    limit = f"exceed {internal}'s maximum {high}" if amount > 0 else f"go below {internal}'s minimum {low}"
    bigger = BIGGER.get(internal)
    fix = f"use {bigger} and replay the dead letters with {REPLAY_HINT}" if bigger else "split the counter"
    return f"adding {amount} to {dm.__name__}.{name} would {limit}; {fix}"
