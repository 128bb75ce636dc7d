"""The fold: drain a batch → validate → aggregate in memory → upsert in one transaction → ack."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, router
from django.utils import timezone as dj_timezone
from kombu import Connection, Consumer, Producer
from kombu.common import maybe_declare

from trackable import fsqueue, messages, redisqueue, transport
from trackable.buckets import bucket_start, get_zone
from trackable.commit import commit_isolating
from trackable.conf import settings
from trackable.exceptions import MalformedMessage, NotRegistered, TrackableConnectionError
from trackable.fields import dimension_fields, unique_fields
from trackable.models import FoldedMessage, TrackableTimeSeriesData, counter_fields, model_field
from trackable.pklimits import PkLimits, pk_limits
from trackable.sites import site

__all__ = ["FoldResult", "process_messages", "fold_batch", "prune_ledger"]

logger = logging.getLogger("trackable")

# Unacked messages the broker may deliver, in batches: while one batch commits, the next one streams
# in (a prefetch of one batch leaves the broker idle during every commit).
PREFETCH_BATCHES = 2
BATCH_MAX_BYTES = 4 * 1024 * 1024


@dataclass
class FoldResult:
    """What one fold did: counts a user can check and a monitor can graph."""

    messages: int = 0  # messages whose events were committed
    events: int = 0  # events in those messages
    rows: int = 0  # distinct (data model, parent, bucket) rows incremented
    duplicates: int = 0  # redelivered messages recognised by the ledger and not counted again
    malformed: int = 0  # messages set aside (dead-lettered or removed)
    batches: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: FoldResult) -> None:
        """Add the counts of `other` to this result."""
        for name in ("messages", "events", "rows", "duplicates", "malformed", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as a JSON-ready dict."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"Folded {self.events} events from {self.messages} messages into {self.rows} rows in "
            f"{self.batches} batches ({self.seconds:.2f}s); {self.duplicates} duplicates skipped, "
            f"{self.malformed} malformed set aside."
        )


def _resolve_data_models(data_models: Iterable[Any] | None) -> list[type[models.Model]]:
    if data_models is None:
        return site.data_models()
    resolved = []
    for item in data_models:
        if isinstance(item, str):
            dm = site.get_data_model(item.lower())
            if dm is None:
                raise NotRegistered(f"{item!r} is not a registered trackable data model.")
        else:
            dm = item
            if dm not in site.data_models():
                raise NotRegistered(f"{dm.__name__} is not a registered trackable data model.")
        resolved.append(dm)
    return resolved


def process_messages(
    data_models: Iterable[Any] | None = None,
    *,
    batch_size: int | None = None,
    max_messages: int | None = None,
    idle_timeout: float = 1.0,
    connection: Connection | None = None,
) -> FoldResult:
    """Fold the queued messages of `data_models` (default: all registered) into rows; return the counts.

    Drains until the queues stay empty for `idle_timeout` seconds or `max_messages` were taken. First
    relays this host's journal: this process's own segments and those of processes that died.
    """
    started = time.monotonic()
    _relay_journal()
    result = FoldResult()
    chosen = _resolve_data_models(data_models)
    if not chosen:
        return result
    batch_size = batch_size or settings.BATCH_SIZE
    queues = [transport.queue_for(dm._meta.label_lower) for dm in chosen]
    conn = connection or transport.connection()
    try:
        conn.ensure_connection(max_retries=3)
        channel = conn.channel()
        _restore_visible(conn, channel)
        if conn.transport.driver_type == "redis":
            _fold_redis(channel, queues, batch_size, max_messages, idle_timeout, result)
        elif isinstance(channel, fsqueue.Channel):
            _fold_files(channel, queues, batch_size, max_messages, idle_timeout, result)
        else:
            _fold_consumer(conn, channel, queues, batch_size, max_messages, idle_timeout, result)
        _count_corrupt_files(channel, result)
        channel.close()  # type: ignore[attr-defined]  # kombu-stubs' StdChannel lacks close()
    finally:
        if connection is None:
            conn.release()
    prune_ledger()
    if any(unique_fields(dm) for dm in chosen):
        from trackable.visitors import rotate_salts

        rotate_salts()  # a salt is deleted when its period ends, even where no web process loads salts
    result.seconds = time.monotonic() - started
    from trackable.status import record_fold_run  # trackable_status reads the last runs

    record_fold_run(result)
    return result


def _relay_journal() -> None:
    """Publish what the journal of this host holds, so a fold right after a send (or a crash) counts it."""
    from trackable import relay

    try:
        relay.flush()
    except TrackableConnectionError as err:
        logger.warning("Could not relay the trackable journal before folding: %s", err)


def _room(result: FoldResult, batch_size: int, max_messages: int | None) -> int:
    """Return how many messages the next batch may take."""
    if max_messages is None:
        return batch_size
    return min(batch_size, max_messages - result.messages - result.duplicates - result.malformed)


def _fold_consumer(conn, channel, queues, batch_size, max_messages, idle_timeout, result) -> None:
    """Fold through a kombu consumer (AMQP, filesystem://): the broker pushes up to a batch."""
    batch: list[Any] = []
    # Declared now, so that dead-lettering needs no round trip while consuming: a client waiting for a
    # reply reads (and hands to on_message) every delivery ahead of it, unbounded by the byte budget.
    maybe_declare(transport.dead_letter_queue(), channel)
    consumer = Consumer(channel, queues=queues, on_message=batch.append, auto_declare=True)
    consumer.qos(prefetch_count=min(batch_size * PREFETCH_BATCHES, 65535))
    with consumer:
        while (want := _room(result, batch_size, max_messages)) > 0:
            _drain(conn, batch, want, idle_timeout)
            if not batch:
                break
            taken = batch[:]
            # Anything delivered while this batch folds stays for the next one (never dropped unacked:
            # the next batch's ack covers every earlier delivery tag).
            del batch[: len(taken)]
            result.add(fold_batch(taken, channel))


def _fold_redis(channel, queues, batch_size, max_messages, idle_timeout, result) -> None:
    """Fold from Redis, taking each batch with one atomic pop-and-record script (see redisqueue)."""
    names = [q.name for q in queues]
    for queue in queues:
        queue(channel).declare()
    dead = transport.dead_letter_queue()
    dead(channel).declare()
    limits: dict[str, Any] = {
        "max_bytes": transport.max_envelope_bytes(),
        "budget": BATCH_MAX_BYTES,
        "dead": None if settings.REMOVE_MALFORMED_MESSAGES else dead.name,
    }
    quiet_since = restored_at = time.monotonic()
    turn = 0
    while (want := _room(result, batch_size, max_messages)) > 0:
        turn += 1
        batch = redisqueue.take(channel, _rotated(names, turn), want, **limits)
        _count_oversized(batch.oversized, limits, result)
        if not batch:
            if time.monotonic() - quiet_since >= idle_timeout:
                return
            if time.monotonic() - restored_at >= redisqueue.LEASE / 3:
                restored_at = time.monotonic()
                redisqueue.restore_expired(channel)
            time.sleep(min(0.05, idle_timeout))
            continue
        quiet_since = time.monotonic()
        try:
            result.add(fold_batch(batch, channel))
        except BaseException:
            # Not a crash (a crash leaves them to the next fold's restore_expired): give them back at once.
            redisqueue.restore(channel, [m.delivery_tag for m in batch])
            raise


def _fold_files(channel, queues, batch_size, max_messages, idle_timeout, result) -> None:
    """Fold from filesystem:// queue files, claiming each batch directly (see fsqueue.Channel.take).

    The channel's file thread claims the next batch while this one is checked and committed, and
    removes a batch's files once it committed (ack); both wait in system calls, beside the database.
    """
    names = [q.name for q in queues]
    for queue in queues:
        queue(channel).declare()
    maybe_declare(transport.dead_letter_queue(), channel)
    quiet_since = time.monotonic()
    turn = 0
    ahead: Future[list[Any]] | None = None  # the next batch, being claimed
    try:
        while (want := _room(result, batch_size, max_messages)) > 0:
            turn += 1
            batch = ahead.result() if ahead is not None else channel.take(_rotated(names, turn), want, BATCH_MAX_BYTES)
            ahead = None
            if not batch:
                if time.monotonic() - quiet_since >= idle_timeout:
                    return
                time.sleep(min(0.05, idle_timeout))
                continue
            quiet_since = time.monotonic()
            after = _room(result, batch_size, None if max_messages is None else max_messages - len(batch))
            if after > 0:
                ahead = channel.take_ahead(_rotated(names, turn + 1), after, BATCH_MAX_BYTES)
            try:
                result.add(fold_batch(batch, channel))
            except BaseException:
                # Not a crash (a crash leaves them to the lease): give them back at once.
                channel.give_back([m.delivery_tag for m in batch])
                raise
    finally:
        try:
            if ahead is not None:  # claimed for a turn that will not come
                channel.give_back([m.delivery_tag for m in ahead.result()])
        finally:
            channel.settle()  # every committed batch's files removed before the fold returns


def _rotated(names: list[str], turn: int) -> list[str]:
    """Return the queue names starting at another one each turn, so that no queue starves the others."""
    return names[turn % len(names):] + names[: turn % len(names)]


def _count_oversized(n: int, limits: dict, result: FoldResult) -> None:
    if not n:
        return
    where = "removed" if limits["dead"] is None else f"moved to queue {limits['dead']}"
    logger.error("%d trackable messages over %d bytes %s without being read", n, limits["max_bytes"], where)
    result.malformed += n
    result.reasons["oversized envelope"] = result.reasons.get("oversized envelope", 0) + n


def _restore_visible(conn: Connection, channel: Any) -> None:
    """On Redis, give back the messages a dead fold took (older than redisqueue.LEASE).

    Kombu's own scan (older than visibility_timeout) still runs for messages taken before an upgrade.
    """
    if conn.transport.driver_type == "redis":
        redisqueue.restore_expired(channel)
        channel.qos.restore_visible(num=None, interval=1)


def _drain(conn: Connection, batch: list[Any], want: int, idle_timeout: float) -> None:
    """Let the consumer callback fill `batch` until it holds `want` messages or the queues go quiet.

    A batch also ends at BATCH_MAX_BYTES of bodies, so messages carrying many events (the producer
    buffer's) keep a worker's memory flat.
    """
    size = counted = 0
    while len(batch) < want and size < BATCH_MAX_BYTES:
        try:
            conn.drain_events(timeout=idle_timeout if not batch else min(idle_timeout, 0.05))
        except TimeoutError:
            return
        for raw in batch[counted:]:
            size += len(raw.body)
        counted = len(batch)


def _count_corrupt_files(channel: Any, result: FoldResult) -> None:
    if isinstance(channel, fsqueue.Channel) and fsqueue.Channel.corrupt_files:
        n, fsqueue.Channel.corrupt_files = fsqueue.Channel.corrupt_files, 0
        result.malformed += n
        result.reasons["corrupt queue file"] = result.reasons.get("corrupt queue file", 0) + n


class _Validator:
    """Check parsed events against the registry and convert them to row keys (fold side only)."""

    def __init__(self) -> None:
        self.zone = get_zone(settings.time_zone)
        self.models: dict[str, type[models.Model]] = {}
        self.parents: dict[tuple[type, str], tuple[int, PkLimits]] = {}
        self.buckets: dict[tuple[str, int], datetime] = {}
        self.routes: dict[tuple[str, str, str, str], tuple] = {}

    def data_model(self, label: str) -> type[models.Model]:
        dm = self.models.get(label)
        if dm is None:
            dm = site.get_data_model(label)
            if dm is None:
                raise MalformedMessage(f"data model {label!r} is not registered")
            self.models[label] = dm
        return dm

    def parent(self, dm: type[models.Model], parent_label: str) -> tuple[int, PkLimits]:
        """Return the content type id of a registered parent of `dm` and the pks `dm` can hold for it."""
        key = (dm, parent_label)
        found = self.parents.get(key)
        if found is None:
            parent = next((p for p in site.parents_of(dm) if p._meta.label_lower == parent_label), None)
            if parent is None:
                raise MalformedMessage(f"{parent_label!r} is not registered with {dm._meta.label}")
            ct_id = ContentType.objects.get_for_model(parent, for_concrete_model=False).pk
            found = self.parents[key] = (ct_id, pk_limits(parent, dm))
        return found

    def bucket(self, dm: type[models.Model], ts_ms: int) -> datetime | None:
        if not issubclass(dm, TrackableTimeSeriesData):
            return None
        key = (dm.granularity, ts_ms // 60_000)  # every granularity is a whole number of minutes
        start = self.buckets.get(key)
        if start is None:
            moment = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
            start = self.buckets[key] = bucket_start(moment, dm.granularity, self.zone)
        return start

    def route(self, data_label: str, parent_label: str, field_name: str, queue: str) -> tuple:
        """Return (data model, content type id, object_id converter, pk limits, low, high, dimensions) of a route.

        Ints from low to high need neither the limits' check nor the converter: the column holds them as
        they are (an empty range when that is not so, e.g. an int pk kept in a string column). Dimensions:
        (name, max_length) of a breakdown's Dimension fields.
        """
        dm = self.data_model(data_label)
        if transport.queue_name(data_label) != queue:
            raise MalformedMessage(f"event for {data_label} arrived on queue {queue}"[:300])
        if field_name not in counter_fields(dm):
            raise MalformedMessage(f"{field_name!r} is not a counter field of {dm._meta.label}")
        ct_id, limits = self.parent(dm, parent_label)
        to_python = model_field(dm, "object_id").to_python
        low, high = limits.int_range() or (1, 0)
        if low <= high and not all(type(to_python(v)) is int and to_python(v) == v for v in (low, high, 0)):
            low, high = 1, 0
        dimensions = tuple((f.name, f.max_length or 0) for f in dimension_fields(dm))
        return dm, ct_id, to_python, limits, low, high, dimensions

    @staticmethod
    def dimension_key(dm: type[models.Model], dimensions: tuple, extras: dict[str, Any] | None) -> tuple[str, ...]:
        """Return the values of a breakdown's dimensions in field order (missing ones empty); raise if they do not fit."""
        values = extras.get("d") if extras else None
        if not dimensions:
            if values is not None:
                raise MalformedMessage(f"dimensions sent to {dm._meta.label}, which has no Dimension fields")
            return ()
        values = values or {}
        names = {name for name, _ in dimensions}
        unknown = sorted(name for name in values if name not in names)
        if unknown:
            raise MalformedMessage(f"{', '.join(unknown)[:80]} is not a Dimension field of {dm._meta.label}")
        key = []
        for name, max_length in dimensions:
            value = values.get(name, "")
            if len(value) > max_length:
                raise MalformedMessage(
                    f"dimension {name} holds {len(value)} characters, over {dm._meta.label}.{name}'s {max_length}"
                )
            key.append(value)
        return tuple(key)

    def rows(self, message: messages.Message, queue: str) -> list[tuple[type[models.Model], tuple, str, int, Any]]:
        out = []
        routes = self.routes
        for event in message.events:
            # Only routes that passed every check are remembered: a bad one raises each time it comes.
            route_key = (event.data_label, event.parent_label, event.field, queue)
            route = routes.get(route_key)
            if route is None:
                route = routes[route_key] = self.route(*route_key)
            dm, ct_id, to_python, limits, low, high, dimensions = route
            pk = event.pk
            if type(pk) is int and low <= pk <= high:  # an int the column holds as it is (see route())
                object_id = pk
            else:
                problem = limits.problem(pk)
                if problem is not None:
                    raise MalformedMessage(f"parent pk {str(pk)[:80]!r} cannot be stored: {problem}")
                try:
                    object_id = to_python(pk)
                except ValidationError as err:
                    raise MalformedMessage(f"parent pk {str(pk)[:80]!r} does not fit {dm._meta.label}.object_id") from err
            visitor = event.extras.get("u") if event.extras else None  # a hash, a list of them, or None
            key: tuple = (ct_id, object_id, self.bucket(dm, event.ts_ms))
            if dimensions or event.extras:
                key += self.dimension_key(dm, dimensions, event.extras)
            out.append((dm, key, event.field, event.amount, visitor))
        return out


def fold_batch(batch: list[Any], channel: Any) -> FoldResult:
    """Fold one batch of kombu messages: commit their increments and ledger ids, then ack them.

    Messages the database refuses are isolated (see trackable.commit) and set aside with the rest of
    the malformed ones; everything else commits.
    """
    result = FoldResult(batches=1)
    good, bad = _validate(batch)
    done = commit_isolating(good, router.db_for_write(FoldedMessage))
    result.rows = done.rows
    result.duplicates = len(done.duplicates)
    result.messages = len(done.fresh)
    result.events = sum(len(m.events) for _, m, _ in done.fresh)
    _set_aside(bad + done.refused, channel, result)
    _ack([raw for raw, _, _ in good] + [raw for raw, _ in bad], channel)
    return result


def _validate(batch: list[Any]) -> tuple[list[tuple[Any, messages.Message, list]], list[tuple[Any, str]]]:
    """Split a batch into (raw, parsed, rows) of valid messages and (raw, reason) of malformed ones."""
    validator = _Validator()
    good: list[tuple[Any, messages.Message, list]] = []
    bad: list[tuple[Any, str]] = []
    for raw in batch:
        try:
            if raw.content_type != messages.CONTENT_TYPE:
                raise MalformedMessage(f"content type {str(raw.content_type)[:80]!r} is not {messages.CONTENT_TYPE}")
            parsed = messages.parse(raw.body, settings.MAX_MESSAGE_BYTES)
            queue = raw.delivery_info.get("routing_key") or ""
            if not isinstance(queue, str):
                raise MalformedMessage(f"routing key {str(queue)[:80]!r} is not a queue name")
            good.append((raw, parsed, validator.rows(parsed, queue)))
        except MalformedMessage as err:
            bad.append((raw, str(err)))
    return good, bad


def _set_aside(bad: list[tuple[Any, str]], channel: Any, result: FoldResult) -> None:
    """Dead-letter (or remove) malformed messages, logging why; count them by reason."""
    if not bad:
        return
    dead = transport.dead_letter_queue()
    producer = None if settings.REMOVE_MALFORMED_MESSAGES else Producer(channel)
    for raw, reason in bad:
        body = raw.body if isinstance(raw.body, bytes) else str(raw.body).encode("utf-8", "replace")
        logger.error(
            "Malformed trackable message %s: %s; body starts %r",
            "removed" if producer is None else f"moved to queue {dead.name}",
            reason,
            body[:120],
        )
        if producer is not None:
            producer.publish(
                body,
                routing_key=dead.name,
                declare=[dead],
                content_type=raw.content_type or "application/octet-stream",
                content_encoding=raw.content_encoding or "binary",
                headers={"x-trackable-error": reason[:500], "x-trackable-queue": raw.delivery_info.get("routing_key")},
                delivery_mode=2,
            )
        kind = _reason_kind(reason)
        result.reasons[kind] = result.reasons.get(kind, 0) + 1
    result.malformed += len(bad)


def _reason_kind(reason: str) -> str:
    """Return the gist of a reason for counting: no event index, no quoted values, no details."""
    gist = re.sub(r"^event \d+: ", "", reason)
    gist = re.split(r"[:'\"\d(]", gist, maxsplit=1)[0]
    return " ".join(gist.split()) or "malformed"


def _ack(raws: list[Any], channel: Any) -> None:
    if not raws:
        return
    if isinstance(raws[0], redisqueue.RedisMessage):
        redisqueue.ack(channel, [raw.delivery_tag for raw in raws])
        return
    if isinstance(raws[0], fsqueue.FileMessage):
        channel.ack([raw.delivery_tag for raw in raws])
        return
    if (
        getattr(channel.connection.client, "transport", None) is not None
        and channel.connection.client.transport.driver_type == "amqp"
    ):
        last = max(raws, key=lambda r: r.delivery_tag)
        last.ack(multiple=True)
    else:
        for raw in raws:
            raw.ack()


def prune_ledger(now: datetime | None = None) -> int:
    """Delete ledger ids older than TRACKABLE_LEDGER_RETENTION seconds; return how many."""
    cutoff = (now or dj_timezone.now()) - timedelta(seconds=settings.LEDGER_RETENTION)
    db = router.db_for_write(FoldedMessage)
    deleted, _ = FoldedMessage.objects.using(db).filter(folded_at__lt=cutoff).delete()
    return deleted
