"""Put dead letters back on the queues they came from, e.g. after a migration widened a counter field."""
from __future__ import annotations

from dataclasses import dataclass

from kombu import Connection, Producer

from trackable import transport
from trackable.sites import site

__all__ = ["ReplayResult", "replay_dead_letters"]


@dataclass
class ReplayResult:
    """What a replay did: messages put back on their queues, and those kept for want of a known queue."""

    replayed: int = 0
    kept: int = 0

    def __str__(self) -> str:
        return (
            f"Put {self.replayed} dead letters back on their queues; {self.kept} without a registered "
            f"data model's queue stay in {transport.dead_letter_queue().name}."
        )


def replay_dead_letters(connection: Connection | None = None) -> ReplayResult:
    """Move every message now in the dead-letter queue back to its queue (the header x-trackable-queue).

    Only as many messages as the queue held at the start are looked at, so the messages kept (their
    queue is not one of a registered data model) go to its back once and the replay ends. A replayed
    message keeps its id: one that had been counted is recognised by the ledger, not counted twice.
    """
    result = ReplayResult()
    queues = {transport.queue_name(dm._meta.label_lower): transport.queue_for(dm._meta.label_lower) for dm in site.data_models()}
    conn = connection or transport.connection()
    try:
        channel = conn.channel()
        dead = transport.dead_letter_queue()(channel)
        producer = Producer(channel)
        # kombu-stubs type queue_declare() as the queue name; it returns the declare-ok (with its count).
        for _ in range(dead.queue_declare().message_count):  # type: ignore[union-attr]
            message = dead.get(no_ack=False)
            if message is None:
                break
            origin = (message.headers or {}).get("x-trackable-queue")
            target = queues.get(origin) if isinstance(origin, str) else None
            producer.publish(
                message.body,
                routing_key=(target or dead).name,
                declare=[target or dead],
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers={} if target else message.headers,
                delivery_mode=2,
            )
            message.ack()
            if target:
                result.replayed += 1
            else:
                result.kept += 1
        channel.close()  # type: ignore[attr-defined]  # kombu-stubs' StdChannel lacks close()
    finally:
        if connection is None:
            conn.release()
    return result
