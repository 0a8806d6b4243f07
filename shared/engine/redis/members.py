"""Redis :class:`~shared.engine.members.Members`: a zset per room, every score 0, so members sort
by their bytes (``ZRANGEBYLEX`` pages)."""

from __future__ import annotations

from typing import cast

from shared.engine.members import Members
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.pipeline import RedisPipeline

_ADD = """
local out = {}
for _, user in ipairs(ARGV) do
  if redis.call('ZADD', KEYS[1], 0, user) == 1 then out[#out + 1] = user end
end
return out
"""

_REMOVE = """
local out = {}
for _, user in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], user) == 1 then out[#out + 1] = user end
end
return out
"""


class RedisMembers(Members):
    def __init__(self, pipeline: RedisPipeline, keys: KeySpace) -> None:
        self._redis = pipeline.redis  # no member write is ordered with the pipeline's
        self._keys = keys
        self._add = self._redis.register_script(_ADD)
        self._remove = self._redis.register_script(_REMOVE)

    async def add(self, room_id: str, user_ids: list[str]) -> list[str]:
        if not user_ids:
            return []
        added = await self._add(keys=[self._keys.members(room_id)], args=user_ids)
        return [user_id.decode() for user_id in added]

    async def remove(self, room_id: str, user_ids: list[str]) -> list[str]:
        if not user_ids:
            return []
        removed = await self._remove(keys=[self._keys.members(room_id)], args=user_ids)
        return [user_id.decode() for user_id in removed]

    async def check(self, room_id: str, user_ids: list[str]) -> list[bool]:
        if not user_ids:
            return []
        scores = await self._redis.zmscore(self._keys.members(room_id), user_ids)
        return [score is not None for score in scores]

    async def page(self, room_id: str, after: str | None, limit: int) -> list[str]:
        if limit <= 0:
            return []
        low = b"(" + after.encode() if after is not None else b"-"
        rows = await self._redis.zrangebylex(self._keys.members(room_id), low, b"+", start=0, num=limit)
        return [user_id.decode() for user_id in cast("list[bytes]", rows)]

    async def clear(self, room_id: str) -> None:
        await self._redis.delete(self._keys.members(room_id))
