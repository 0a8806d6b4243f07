"""Redis :class:`~shared.engine.history.History`: one stream per room.

Entry ids are the server's ms clock, so age trimming is ``XTRIM MINID``; count and age are
trimmed on every append, and the key expires when the room goes quiet. Writes go through the
ordered pipeline (they are ordered at call time).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from shared.clock import now_ms
from shared.engine.history import History
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.lua import SERVER_NOW
from shared.engine.redis.pipeline import RedisPipeline, completion, first_as_bool

_APPEND = (
    SERVER_NOW
    + """
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'i', ARGV[i], 'f', ARGV[i + 1])
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[1]))
redis.call('XTRIM', KEYS[1], 'MINID', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
"""
)

# Finding a message by its id scans the (small, bounded) stream inside Redis.
_REMOVE = """
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  if entry[2][2] == ARGV[1] then
    return redis.call('XDEL', KEYS[1], entry[1])
  end
end
return 0
"""


class RedisHistory(History):
    def __init__(self, pipeline: RedisPipeline, keys: KeySpace) -> None:
        self._redis = pipeline.redis
        self._pipeline = pipeline
        self._keys = keys
        self._append = pipeline.script(_APPEND)
        self._remove = pipeline.script(_REMOVE)

    async def _entries(self, room_id: str, max_age_ms: int) -> list[tuple[str, bytes]]:
        """Every live entry, oldest first; bounded by the room's history size."""
        horizon = now_ms() - max_age_ms  # this clock is close enough to the server's for reads
        rows = await self._redis.xrange(self._keys.history(room_id), min=f"{horizon}", max="+")
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", rows)
        return [(fields[b"i"].decode(), fields[b"f"]) for _, fields in entries]

    def append(
        self, room_id: str, items: list[tuple[str, bytes]], max_messages: int, max_age_ms: int
    ) -> Awaitable[None]:
        flat: list[Any] = [max_messages, max_age_ms]
        for message_id, frame in items:
            flat += [message_id, frame]
        if not items:
            return completion(None)
        script = ("EVALSHA", self._append.sha, 1, self._keys.history(room_id), *flat)
        return completion(self._pipeline.submit([script]))

    def remove(self, room_id: str, message_id: str) -> Awaitable[bool]:
        return first_as_bool(
            self._pipeline.submit([("EVALSHA", self._remove.sha, 1, self._keys.history(room_id), message_id)])
        )

    async def latest(
        self, room_id: str, limit: int, max_age_ms: int, before: str | None = None
    ) -> list[tuple[str, bytes]]:
        entries = await self._entries(room_id, max_age_ms)
        if before is not None:
            ids = [message_id for message_id, _ in entries]
            entries = entries[: ids.index(before)] if before in ids else []
        return list(reversed(entries[-limit:])) if limit else []

    async def after(
        self, room_id: str, after: str, limit: int, max_age_ms: int
    ) -> tuple[list[tuple[str, bytes]], bool]:
        entries = await self._entries(room_id, max_age_ms)
        ids = [message_id for message_id, _ in entries]
        found = after in ids
        start = ids.index(after) + 1 if found else 0
        return entries[start : start + limit], found

    async def clear(self, room_id: str) -> None:
        await self._redis.delete(self._keys.history(room_id))
