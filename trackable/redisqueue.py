"""Take messages from Redis queues atomically, under a short lease, within a byte budget.

Kombu's Redis consumer pops a message (BRPOP) and records it as unacked in a second command; a worker
killed between the two loses the message, and kombu gives a dead worker's messages back only after
``visibility_timeout`` (an hour by default). Here one Lua script pops up to N messages and records each
in the fold's own unacked hash and index (``<TRACKABLE_QUEUE_PREFIX>.unacked``), so nothing is ever in
flight unrecorded; a record older than LEASE seconds belongs to a dead fold, and the next fold puts it
back on its queue with another script (atomic: no lock that a killed fold could leave held).

The take also bounds a worker's memory: it stops at BATCH_MAX_BYTES, and an envelope over the size
limit never leaves Redis: the script moves it to the dead-letter queue (or drops it) and counts it.
Whatever shape an envelope has, the fold sees a RedisMessage and nothing raises.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

__all__ = ["RedisMessage", "Taken", "take", "ack", "restore", "restore_expired", "LEASE"]

#: Seconds a fold may hold taken messages before another fold gives them back to their queue.
LEASE = 15.0
#: Records given back per restore call (the rest at the next call).
RESTORE_CHUNK = 1000

# KEYS: the queue lists. ARGV: max messages, now, unacked hash, unacked index, max envelope bytes,
# byte budget, dead-letter list ('' to drop oversized envelopes), dead-letter queue name.
_TAKE = """
local taken = {0}
local count, bytes = 0, 0
local limit, max_bytes, budget = tonumber(ARGV[1]), tonumber(ARGV[5]), tonumber(ARGV[6])
for index, queue in ipairs(KEYS) do
  while count < limit and bytes < budget do
    local raw = redis.call('RPOP', queue)
    if not raw then break end
    local tag = redis.sha1hex(raw .. ARGV[2] .. count .. queue)
    if #raw > max_bytes then
      taken[1] = taken[1] + 1
      if ARGV[7] ~= '' then
        redis.call('LPUSH', ARGV[7], cjson.encode({
          body = raw, ['content-type'] = 'application/octet-stream', ['content-encoding'] = 'binary',
          headers = {['x-trackable-error'] = 'envelope is ' .. #raw .. ' bytes, over the limit of ' .. max_bytes,
                     ['x-trackable-queue'] = queue},
          properties = {delivery_tag = tag, priority = 0, delivery_info = {exchange = '', routing_key = ARGV[8]}}}))
      end
    else
      local ok, envelope = pcall(cjson.decode, raw)
      if ok and type(envelope) == 'table' and type(envelope.properties) == 'table'
          and type(envelope.properties.delivery_tag) == 'string' and #envelope.properties.delivery_tag <= 100
          and redis.call('HEXISTS', ARGV[3], envelope.properties.delivery_tag) == 0 then
        tag = envelope.properties.delivery_tag
      end
      redis.call('ZADD', ARGV[4], ARGV[2], tag)
      redis.call('HSET', ARGV[3], tag, queue .. '\\n' .. raw)
      table.insert(taken, tag)
      table.insert(taken, index)
      table.insert(taken, raw)
      count = count + 1
      bytes = bytes + #raw
    end
  end
end
return taken
"""

# KEYS: unacked hash, unacked index. ARGV: ceiling score ('' to give back the tags that follow), tags...
_GIVE_BACK = """
local tags = ARGV
local first = 2
if ARGV[1] ~= '' then
  tags = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, %d)
  first = 1
end
local n = 0
for i = first, #tags do
  local entry = redis.call('HGET', KEYS[1], tags[i])
  if entry then
    local nl = string.find(entry, '\\n', 1, true)
    redis.call('RPUSH', string.sub(entry, 1, nl - 1), string.sub(entry, nl + 1))
    n = n + 1
  end
  redis.call('HDEL', KEYS[1], tags[i])
  redis.call('ZREM', KEYS[2], tags[i])
end
return n
""" % RESTORE_CHUNK  # noqa: UP031 - Lua source, kept readable; one integer filled in


#: What envelope_fields() raises for an envelope that is not kombu's.
ENVELOPE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, binascii.Error)


class RedisMessage:
    """One message taken from a Redis queue: what the fold reads of a kombu Message."""

    __slots__ = ("delivery_tag", "body", "content_type", "content_encoding", "headers", "delivery_info")

    def __init__(self, tag: str, raw: bytes, queue: str) -> None:
        self.delivery_tag = tag
        # The queue it was popped from, whatever the envelope claims.
        self.delivery_info: dict[str, Any] = {"routing_key": queue}
        self.headers: dict[str, Any] = {}
        self.content_type: str | None = "application/x-corrupt-envelope"
        self.content_encoding: str | None = None
        self.body = raw  # unless it is a kombu envelope: then the fold sets it aside as malformed
        try:
            envelope = json.loads(raw)
            info = envelope["properties"].get("delivery_info", {})
            if not isinstance(info, dict) or not isinstance(info.get("routing_key", ""), str):
                raise TypeError("the routing key is not a string")
            self.body, self.content_type, self.content_encoding, self.headers = envelope_fields(envelope)
        except (*ENVELOPE_ERRORS, RecursionError):  # RecursionError: json.loads of a too deeply nested text
            return


def envelope_fields(envelope: Any) -> tuple[bytes, str | None, str | None, dict[str, Any]]:
    """Return (body, content type, content encoding, headers) of a kombu envelope; raise one of ENVELOPE_ERRORS."""
    body = envelope["body"]
    if envelope["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body, validate=True)
    if not isinstance(body, (str, bytes)):
        raise TypeError("the body is not a string")
    content_type, encoding, headers = envelope.get("content-type"), envelope.get("content-encoding"), envelope.get("headers")
    return (
        body if isinstance(body, bytes) else body.encode("utf-8", "replace"),
        content_type if isinstance(content_type, str) else None,
        encoding if isinstance(encoding, str) else None,
        headers if isinstance(headers, dict) else {},
    )


class Taken(list):
    """The messages of one take, and how many oversized envelopes the take set aside."""

    oversized: int = 0


def _keys(channel: Any) -> tuple[str, str, str]:
    from trackable.conf import settings

    prefix = getattr(channel, "global_keyprefix", "") or ""
    return prefix, f"{prefix}{settings.QUEUE_PREFIX}.unacked", f"{prefix}{settings.QUEUE_PREFIX}.unacked_index"


def take(channel: Any, queues: list[str], limit: int, *, max_bytes: int, budget: int, dead: str | None) -> Taken:
    """Pop up to `limit` messages (`budget` bytes) from `queues` in order, recording each as taken.

    An envelope over `max_bytes` goes to the list of the queue `dead` (or nowhere, if None) instead.
    """
    prefix, unacked, index = _keys(channel)
    args = [limit, repr(time.time()), unacked, index, max_bytes, budget, prefix + dead if dead else "", dead or ""]
    with channel.conn_or_acquire() as client:
        flat = client.eval(_TAKE, len(queues), *[prefix + q for q in queues], *args)
    taken = Taken()
    taken.oversized = int(flat[0])
    for i in range(1, len(flat), 3):
        tag, queue, raw = flat[i], queues[int(flat[i + 1]) - 1], flat[i + 2]
        taken.append(RedisMessage(tag.decode() if isinstance(tag, bytes) else tag, raw, queue))
    return taken


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


def restore(channel: Any, tags: list[str]) -> int:
    """Put taken messages back at the head of their queues now (after a failure that is not a crash)."""
    if not tags:
        return 0
    _, unacked, index = _keys(channel)
    with channel.conn_or_acquire() as client:
        return int(client.eval(_GIVE_BACK, 2, unacked, index, "", *tags))


def restore_expired(channel: Any, lease: float = LEASE) -> int:
    """Put back on their queues the messages taken more than `lease` seconds ago (by a fold that died)."""
    _, unacked, index = _keys(channel)
    restored = 0
    with channel.conn_or_acquire() as client:
        while True:
            n = int(client.eval(_GIVE_BACK, 2, unacked, index, repr(time.time() - lease)))
            restored += n
            if n < RESTORE_CHUNK:
                return restored
