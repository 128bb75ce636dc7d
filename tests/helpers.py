"""Small helpers shared by the integration tests."""
from __future__ import annotations

from typing import Any

from kombu import Producer

from trackable import transport
from trackable.folding import FoldResult, process_messages


def fold(*data_models: Any, **kwargs: Any) -> FoldResult:
    """Fold everything queued (or the data models named), waiting briefly for stragglers."""
    kwargs.setdefault("idle_timeout", 0.5)
    return process_messages(list(data_models) or None, **kwargs)


def publish_raw(body: Any, data_label: str, content_type: str = "application/json", **kwargs: Any) -> None:
    """Publish a body exactly as given (maybe hostile) onto a data model's queue."""
    queue = transport.queue_for(data_label) if "." in data_label else None
    conn = transport.connection()
    try:
        producer = Producer(conn.default_channel)
        producer.publish(
            body,
            routing_key=queue.name,
            declare=[queue],
            content_type=content_type,
            content_encoding=kwargs.pop("content_encoding", "utf-8" if content_type == "application/json" else "binary"),
            **kwargs,
        )
    finally:
        conn.release()


def drain_dead_letters() -> list[tuple[bytes, dict]]:
    """Return (body, headers) of every message in the dead-letter queue, removing them."""
    out: list[tuple[bytes, dict]] = []
    conn = transport.connection()
    try:
        queue = transport.dead_letter_queue()(conn.default_channel)
        queue.declare()
        while True:
            message = queue.get(no_ack=True)
            if message is None:
                return out
            out.append((message.body, message.headers or {}))
    finally:
        conn.release()


def row_counts(model: Any, *fields: str) -> list[tuple]:
    """Return (object_id, [collected_during,] field...) tuples of every row, sorted."""
    names = ["object_id"] + (["collected_during"] if hasattr(model, "granularity") else []) + list(fields)
    # Numbers sort as numbers: as strings, object id 10 came before 9 once PostgreSQL's ids crossed a digit.
    return sorted(
        model.objects.values_list(*names), key=lambda r: tuple((0, v, "") if isinstance(v, int) else (1, 0, str(v)) for v in r)
    )
