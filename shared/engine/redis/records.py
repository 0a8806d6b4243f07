"""Redis :class:`~shared.engine.records.Records`: a JSON string per record and a sorted set of
ids by update time per kind (``shared.engine.redis.keys``)."""

from __future__ import annotations

from typing import cast

from shared.engine.records import QuotaExceeded, Record, RecordKind, Records
from shared.engine.redis.codec import decode_record, encode
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.pipeline import RedisPipeline

# The count check and the insert must be one atomic step, or concurrent creates on several api
# replicas could each see ``limit - 1`` and all insert.
_CREATE = """
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return 1
"""

# put must not resurrect a record deleted concurrently, hence the EXISTS inside the script.
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class RedisRecords(Records):
    def __init__(self, pipeline: RedisPipeline, keys: KeySpace) -> None:
        self._redis = pipeline.redis  # records need no ordering with other writes ...
        self._pipeline = pipeline  # ... but the hot read (a router's room) is cheapest pipelined
        self._keys = keys
        self._create = self._redis.register_script(_CREATE)
        self._put = self._redis.register_script(_PUT)

    async def create(self, kind: RecordKind, rid: str, record: Record, updated_ms: int, limit: int) -> None:
        keys = [self._keys.record(kind, rid), self._keys.index(kind)]
        if not await self._create(keys=keys, args=[encode(record), updated_ms, limit, rid]):
            raise QuotaExceeded(kind, limit)

    async def put(self, kind: RecordKind, rid: str, record: Record, updated_ms: int) -> bool:
        keys = [self._keys.record(kind, rid), self._keys.index(kind)]
        return bool(await self._put(keys=keys, args=[encode(record), updated_ms, rid]))

    async def get(self, kind: RecordKind, rid: str) -> Record | None:
        (raw,) = await self._pipeline.submit([("GET", self._keys.record(kind, rid))])
        return None if raw is None else decode_record(cast(bytes, raw))

    async def delete(self, kind: RecordKind, rid: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.record(kind, rid))
            pipe.zrem(self._keys.index(kind), rid)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def count(self, kind: RecordKind) -> int:
        return int(await self._redis.zcard(self._keys.index(kind)))

    async def page(self, kind: RecordKind, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str, Record]]:
        if limit <= 0:
            return []
        idx = self._keys.index(kind)
        # A sorted set orders equal scores by member bytes, so ZREVRANGEBYSCORE already gives
        # (updated_ms desc, id desc). The cursor's own score needs an id filter, done here in
        # Python rather than in Lua because Lua's string '<' follows the server's locale.
        rows: list[tuple[int, str]] = []
        async with self._redis.pipeline(transaction=True) as pipe:
            if after is None:
                pipe.zrevrangebyscore(idx, "+inf", "-inf", start=0, num=limit, withscores=True)
                (rest,) = await pipe.execute()
            else:
                updated, cursor_id = after
                pipe.zrevrangebyscore(idx, updated, updated, withscores=True)
                pipe.zrevrangebyscore(idx, f"({updated}", "-inf", start=0, num=limit, withscores=True)
                ties, rest = await pipe.execute()
                rows = [(int(s), m.decode()) for m, s in ties if m.decode() < cursor_id]
        rows.extend((int(s), m.decode()) for m, s in rest)
        rows = rows[:limit]
        if not rows:
            return []
        raws = cast("list[bytes | None]", await self._redis.mget([self._keys.record(kind, rid) for _, rid in rows]))
        # A record deleted between the two reads is skipped, as if the page was read just after.
        return [
            (updated, rid, decode_record(raw))
            for (updated, rid), raw in zip(rows, raws, strict=False)
            if raw is not None
        ]
