"""Take messages from Redis queues atomically: pop and record as unacked in one server-side step.

Kombu's Redis consumer pops a message (BRPOP) and records it as unacked in a second command; a worker
killed between the two loses the message. Here one Lua script pops up to N messages and writes each
into Kombu's own unacked hash and index, in Kombu's format, so nothing is ever in flight unrecorded,
and Kombu's restore_visible() gives the messages of a dead worker back after visibility_timeout.
It also takes a whole batch per round trip instead of one message.
"""
from __future__ import annotations

import base64
import time
from typing import Any

from kombu.utils.json import loads

__all__ = ["RedisMessage", "take", "ack", "restore"]

# KEYS: the queue lists. ARGV: max messages, now, unacked hash key, unacked index key.
_TAKE = """
local taken = {}
local count = 0
local limit = tonumber(ARGV[1])
for _, queue in ipairs(KEYS) do
  while count < limit do
    local raw = redis.call('RPOP', queue)
    if not raw then break end
    local ok, envelope = pcall(cjson.decode, raw)
    local tag, exchange, routing_key = nil, '', queue
    if ok and type(envelope) == 'table' and type(envelope.properties) == 'table' then
      tag = envelope.properties.delivery_tag
      local info = envelope.properties.delivery_info
      if type(info) == 'table' then
        exchange = info.exchange or ''
        routing_key = info.routing_key or queue
      end
    end
    if type(tag) ~= 'string' then
      tag = redis.sha1hex(raw .. ARGV[2] .. count)
    end
    redis.call('ZADD', ARGV[4], ARGV[2], tag)
    redis.call('HSET', ARGV[3], tag, '[' .. raw .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
    table.insert(taken, tag)
    table.insert(taken, raw)
    count = count + 1
  end
end
return taken
"""


class RedisMessage:
    """One message taken from a Redis queue: what the fold reads of a kombu Message."""

    __slots__ = ("delivery_tag", "body", "content_type", "content_encoding", "headers", "delivery_info")

    def __init__(self, tag: str, raw: bytes, queue: str) -> None:
        self.delivery_tag = tag
        self.delivery_info: dict[str, Any] = {"routing_key": queue}
        self.headers: dict[str, Any] = {}
        self.content_type: str | None = None
        self.content_encoding: str | None = None
        try:
            envelope = loads(raw)
            properties = envelope.get("properties") or {}
            body = envelope.get("body", "")
            if properties.get("body_encoding") == "base64":
                body = base64.b64decode(body)
            self.body = body if isinstance(body, bytes) else str(body).encode("utf-8")
            self.content_type = envelope.get("content-type")
            self.content_encoding = envelope.get("content-encoding")
            self.headers = envelope.get("headers") or {}
            self.delivery_info["routing_key"] = (properties.get("delivery_info") or {}).get("routing_key") or queue
        except (ValueError, TypeError, AttributeError):
            self.body = raw  # not a kombu envelope: the fold sets it aside as malformed
            self.content_type = "application/x-corrupt-envelope"


def _keys(channel: Any) -> tuple[str, str, str]:
    prefix = getattr(channel, "global_keyprefix", "") or ""
    return prefix, prefix + channel.unacked_key, prefix + channel.unacked_index_key


def take(channel: Any, queues: list[str], limit: int) -> list[RedisMessage]:
    """Pop up to `limit` messages from `queues` (in order), recording each as unacked atomically."""
    prefix, unacked, index = _keys(channel)
    with channel.conn_or_acquire() as client:
        flat = client.eval(_TAKE, len(queues), *[prefix + q for q in queues], limit, repr(time.time()), unacked, index)
    messages = []
    for i in range(0, len(flat), 2):
        tag, raw = flat[i], flat[i + 1]
        tag = tag.decode() if isinstance(tag, bytes) else tag
        messages.append(RedisMessage(tag, raw, queues[0] if len(queues) == 1 else ""))
    return messages


def ack(channel: Any, tags: list[str]) -> None:
    """Forget taken messages (after their batch committed): one round trip for the whole batch."""
    if not tags:
        return
    _, unacked, index = _keys(channel)
    with channel.conn_or_acquire() as client:
        pipe = client.pipeline()
        pipe.zrem(index, *tags)
        pipe.hdel(unacked, *tags)
        pipe.execute()


def restore(channel: Any, tags: list[str]) -> None:
    """Put taken messages back at the head of their queues now (after a failure that is not a crash)."""
    for tag in tags:
        channel.qos.restore_by_tag(tag, leftmost=True)
