"""Small helpers shared by the integration tests."""
from __future__ import annotations

import os
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


DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def delete_run_queues() -> None:
    """Delete what this run declared on its brokers: its RabbitMQ queues, its Redis keys."""
    from django.conf import settings as django_settings

    names = run_queue_names()
    for url in {django_settings.TRACKABLE_BROKER_URL, os.environ.get("TRACKABLE_TEST_AMQP_URL", DEFAULT_AMQP)}:
        if url.startswith("amqp"):
            _delete_amqp_queues(url, names)
        elif url.startswith("redis"):
            _delete_redis_keys(url, django_settings.RUN_ID)


def run_queue_names() -> list[str]:
    """Every queue name this run may have declared: one per data model, the dead letters, Celery's."""
    from django.apps import apps
    from django.conf import settings as django_settings

    from trackable.models import TrackableData

    labels = {m._meta.label_lower for m in apps.get_models() if issubclass(m, TrackableData)}
    prefixes = [django_settings.TRACKABLE_QUEUE_PREFIX, f"{django_settings.TRACKABLE_QUEUE_PREFIX}-quorum"]
    names = [f"{prefix}.{label}" for prefix in prefixes for label in [*sorted(labels), "dead"]]
    return names + [django_settings.CELERY_TASK_DEFAULT_QUEUE]


def _delete_amqp_queues(url: str, names: list[str]) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)


def _delete_redis_keys(url: str, run_id: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*{run_id}*", count=1000))
    if keys:
        client.delete(*keys)
