"""The ledger of folded message ids: claim a batch's ids inside the fold's transaction.

Claiming records the ids a batch has not folded before and returns them; a redelivered id is already
there and is left out. On PostgreSQL this is one statement with the ids as a single array parameter
(``INSERT … ON CONFLICT DO NOTHING RETURNING``, which also waits out a concurrent fold of the same id);
elsewhere a SELECT and a bulk INSERT, where a concurrent fold shows as an IntegrityError to retry.
"""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db import connections

from trackable.models import FoldedMessage

__all__ = ["claim_ids", "seen_before"]


def seen_before(db: str, ids: Collection[str]) -> set[str] | None:
    """Return which of `ids` the ledger holds, looked up *before* the fold's transaction (not PostgreSQL).

    SQLite refuses at once, without waiting, to turn a transaction that has read into one that writes
    while another connection writes ("database is locked"), so the read happens outside it.
    """
    if not ids or connections[db].vendor == "postgresql":
        return None
    return set(FoldedMessage.objects.using(db).filter(id__in=sorted(set(ids))).values_list("id", flat=True))


def claim_ids(db: str, ids: Collection[str], now: datetime, seen: set[str] | None = None) -> set[str]:
    """Record those of `ids` the ledger of database `db` does not hold yet; return them.

    `seen` is what seen_before() returned; a concurrent fold that claimed one of the others meanwhile
    makes the INSERT fail with IntegrityError, and the caller retries.
    """
    if not ids:
        return set()
    ordered = sorted(set(ids))  # one lock order for concurrent folds
    connection = connections[db]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(FoldedMessage._meta.db_table)
        # The ids (checked to be 32 hex digits) travel as one text split by the server: binding a list
        # of a thousand strings as an array costs the client and the server more than the insert saves.
        sql = (
            f"INSERT INTO {table} (id, folded_at) SELECT unnest(string_to_array(%s, ',')), %s "
            "ON CONFLICT (id) DO NOTHING RETURNING id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [",".join(ordered), now])
            return {row[0] for row in cursor.fetchall()}
    if seen is None:
        seen = set(FoldedMessage.objects.using(db).filter(id__in=ordered).values_list("id", flat=True))
    fresh = [i for i in ordered if i not in seen]
    FoldedMessage.objects.using(db).bulk_create([FoldedMessage(id=i, folded_at=now) for i in fresh], batch_size=500)
    return set(fresh)
