"""Redis :class:`~shared.engine.done_marks.DoneMarks`: a shard's generation counter and one set
per generation (``KeySpace.done_generation``, ``done_set``), in the shard's own hash slot."""

from __future__ import annotations

from collections.abc import Awaitable

from shared.engine.done_marks import NEIGHBOURS, DoneMarks
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.pipeline import RedisPipeline, completion

# KEYS: the generation counter, the set of generation - 1. ARGV: the expected generation.
_ROTATE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return current end
redis.call('SET', KEYS[1], current + 1)
redis.call('UNLINK', KEYS[2])
return current + 1
"""


class RedisDoneMarks(DoneMarks):
    def __init__(self, pipeline: RedisPipeline, keys: KeySpace) -> None:
        self._pipeline = pipeline
        self._keys = keys
        self._rotate = pipeline.script(_ROTATE)

    async def generation(self, shard: int) -> int:
        (raw,) = await self._pipeline.submit([("GET", self._keys.done_generation(shard))])
        return int(raw or 0)

    async def check(self, shard: int, generation: int, ids: list[str]) -> list[bool]:
        if not ids:
            return []
        commands = [("SMISMEMBER", self._keys.done_set(shard, generation + offset), *ids) for offset in NEIGHBOURS]
        replies = await self._pipeline.submit(commands)
        return [any(reply[index] for reply in replies) for index in range(len(ids))]

    def mark(self, shard: int, generation: int, ids: list[str]) -> Awaitable[None]:
        if not ids:
            return completion(None)
        return completion(self._pipeline.submit([("SADD", self._keys.done_set(shard, generation), *ids)]))

    async def rotate(self, shard: int, generation: int) -> int:
        keys = (self._keys.done_generation(shard), self._keys.done_set(shard, generation - 1))
        (current,) = await self._pipeline.submit([("EVALSHA", self._rotate.sha, 2, *keys, generation)])
        return int(current)

    async def size(self, shard: int) -> int:
        current = await self.generation(shard)
        replies = await self._pipeline.submit(
            [("SCARD", self._keys.done_set(shard, current + offset)) for offset in (-2, *NEIGHBOURS)]
        )
        return sum(int(count) for count in replies)
