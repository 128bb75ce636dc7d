"""Kombu plumbing: connections, queues and the producer. The only I/O of the request path.

Each thread keeps one broker connection and one producer (no pool lock on the hot path); a child
process after fork starts afresh. While the broker is unreachable, calls fail at once for a short,
growing back-off instead of opening a new connection per event.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

from kombu import Connection, Exchange, Producer, Queue
from kombu.exceptions import OperationalError

from trackable import fsqueue, outage
from trackable.conf import settings
from trackable.exceptions import TrackableConnectionError

__all__ = ["connection", "queue_for", "dead_letter_queue", "publish", "reset", "queue_name", "max_envelope_bytes"]

# Publish straight to the queue through the default exchange: works alike on AMQP, Redis and
# filesystem://, and needs no binding state in the publishing process.
DEFAULT_EXCHANGE = Exchange("", type="direct")
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0


def queue_name(data_label: str) -> str:
    """Return the queue name of a data model label ('app_label.model')."""
    return f"{settings.QUEUE_PREFIX}.{data_label}"


def queue_for(data_label: str) -> Queue:
    """Return the durable queue that holds the messages of one data model."""
    return _durable_queue(queue_name(data_label))


def dead_letter_queue() -> Queue:
    """Return the queue where malformed messages are kept for inspection."""
    return _durable_queue(f"{settings.QUEUE_PREFIX}.dead")


def _durable_queue(name: str) -> Queue:
    """Return a durable queue declared with TRACKABLE_QUEUE_ARGUMENTS (e.g. RabbitMQ's x-queue-type)."""
    arguments = dict(settings.QUEUE_ARGUMENTS) or None
    return Queue(
        name, exchange=DEFAULT_EXCHANGE, routing_key=name, durable=True, auto_delete=False, queue_arguments=arguments
    )


def max_envelope_bytes() -> int:
    """Return the size over which a broker envelope is set aside unread (Redis, filesystem://)."""
    return fsqueue.envelope_limit()


def connection(*, request_path: bool = False) -> Connection:
    """Return a new (lazy) kombu Connection to the configured broker."""
    url = settings.broker_url
    options: dict[str, Any] = {}
    transport_cls: Any = None
    if url.startswith("filesystem:"):
        options.update(fsqueue.connection_options(settings.broker_transport_options))
        transport_cls = fsqueue.Transport
    if not request_path:
        options.setdefault("polling_interval", 0.05)  # virtual transports: how long an idle consumer sleeps
    if request_path:
        # Never retry inside a view: one bounded attempt, then fail (and back off).
        timeout = settings.CONNECT_TIMEOUT
        options.update(max_retries=0, interval_start=0, socket_connect_timeout=timeout, socket_timeout=timeout)
        options.update(read_timeout=timeout, write_timeout=timeout)
        if settings.PUBLISH_CONFIRMS and url.split("://", 1)[0] in {"amqp", "pyamqp", "amqps"}:
            # Without publisher confirms a publish "succeeds" into a socket the broker already dropped.
            options.update(confirm_publish=True)
    options.update(settings.broker_transport_options)
    return Connection(url, connect_timeout=settings.CONNECT_TIMEOUT, transport_options=options, transport=transport_cls)


class _Local(threading.local):
    conn: Connection | None = None
    producer: Producer | None = None

    def __init__(self) -> None:
        self.bound: dict[str, Queue] = {}  # data label → its queue bound to this thread's channel


class _State:
    """Process-wide producer state, dropped after fork and on settings changes."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.local = _Local()
        self.down_until = 0.0
        self.backoff = BACKOFF_START
        self.lock = threading.Lock()


_state = _State()


def reset() -> None:
    """Forget every connection of this process (after fork, or when settings change)."""
    global _state
    old, _state = _state, _State()
    if old.pid == os.getpid():
        conn = old.local.conn
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail in any way
                conn.release()


def _after_fork() -> None:
    reset()
    outage.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _producer(state: _State) -> Producer:
    local = state.local
    if local.producer is None:
        local.conn = connection(request_path=True)
        local.producer = Producer(local.conn.default_channel, exchange=DEFAULT_EXCHANGE)
        local.bound = {}
    return local.producer


def _bound_queue(local: _Local, producer: Producer, data_label: str) -> Queue:
    """Return the queue of `data_label` bound to this thread's channel, binding it once per connection.

    kombu's maybe_declare() declares an entity once per connection, but binds (copies) an unbound one
    on every publish, which cost ~35 µs a publish; a bound queue skips that.
    """
    queue = local.bound.get(data_label)
    if queue is None:
        channel = producer.channel
        assert channel is not None  # the producer was made on a channel (_producer)
        queue = local.bound[data_label] = queue_for(data_label).bind(channel)
    return queue


def publish(body: bytes, data_label: str, confirm_timeout: float | None = None) -> None:
    """Publish one message body to the queue of `data_label`; raise TrackableConnectionError on failure.

    `confirm_timeout` lets a caller off the request path (the journal's relay) wait longer than
    TRACKABLE_CONNECT_TIMEOUT for an AMQP publisher confirm: a broker under load that fsyncs before
    confirming is slow, not down.
    """
    state = _state
    if state.down_until and time.monotonic() < state.down_until:
        raise TrackableConnectionError(
            f"The trackable broker is unreachable; next attempt in {state.down_until - time.monotonic():.1f}s."
        )
    try:
        producer = _producer(state)
        queue = _bound_queue(state.local, producer, data_label)
        producer.publish(
            body,
            routing_key=queue.name,
            declare=[queue],
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            retry=False,
            confirm_timeout=confirm_timeout,
        )
    except TrackableConnectionError:
        raise
    except _errors(state) as err:
        _mark_down(state)
        raise TrackableConnectionError(f"Could not publish to the trackable broker: {err!r}") from err
    if state.down_until:
        with state.lock:
            state.down_until = 0.0
            state.backoff = BACKOFF_START
        outage.report_success()


def _errors(state: _State) -> tuple[type[BaseException], ...]:
    """Return the exception classes that mean "the broker is unreachable" for this thread's connection."""
    conn = state.local.conn
    extra = tuple(conn.connection_errors) + tuple(conn.channel_errors) if conn is not None else ()
    return (OSError, OperationalError) + extra


def _mark_down(state: _State) -> None:
    """Drop this thread's connection and refuse new attempts for a growing back-off."""
    local = state.local
    conn, local.conn, local.producer = local.conn, None, None
    if conn is not None:
        with contextlib.suppress(Exception):  # the connection is already broken: closing it may fail in any way
            conn.release()
    with state.lock:
        state.down_until = time.monotonic() + state.backoff
        state.backoff = min(state.backoff * 2, BACKOFF_MAX)
