"""Redis :class:`~shared.engine.marks.Marks`: one ``SET NX PX`` key per mark, through the ordered
pipeline (``claim_many`` is ordered at call time)."""

from __future__ import annotations

from collections.abc import Awaitable

from shared.engine.marks import Marks
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.pipeline import Command, RedisPipeline, completion


def mark_reads(keys: KeySpace, marks: list[str]) -> list[Command]:
    """One GET per mark: marks hash to different slots under Cluster, where one MGET could not
    span them (and in a pipeline the GETs cost one round trip all the same)."""
    return [("GET", keys.mark(mark)) for mark in marks]


class RedisMarks(Marks):
    def __init__(self, pipeline: RedisPipeline, keys: KeySpace) -> None:
        self._redis = pipeline.redis
        self._pipeline = pipeline
        self._keys = keys

    async def claim(self, key: str, ttl_ms: int) -> bool:
        (claimed,) = await self._pipeline.submit([("SET", self._keys.mark(key), b"1", "NX", "PX", ttl_ms)])
        return bool(claimed)

    async def claimed(self, keys: list[str]) -> list[bool]:
        if not keys:
            return []
        return [raw is not None for raw in await self._pipeline.submit(mark_reads(self._keys, keys))]

    def claim_many(self, keys: list[str], ttl_ms: int) -> Awaitable[None]:
        if not keys:
            return completion(None)
        return completion(self._pipeline.submit([("SET", self._keys.mark(key), b"1", "PX", ttl_ms) for key in keys]))

    async def release(self, key: str) -> bool:
        return bool(await self._redis.delete(self._keys.mark(key)))
