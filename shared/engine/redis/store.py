"""``RedisStore``: the production :class:`~shared.engine.store.Store`, shared by every replica.

Builds one client (made by ``shared.engine.redis.connect``: a blocking connection pool to one
server or a Sentinel-managed master, or a ``RedisCluster``), the process's ordered pipeline over it, and a
concern object of ``shared.engine.redis.<concern>`` for each concern, all under one
:class:`~shared.engine.redis.keys.KeySpace`. The bus of the same process may share ``redis`` and
``pipeline`` (its publishes are then ordered with the store's writes).

Must not import any component, and must behave exactly like ``shared.engine.memory.MemoryStore``:
``tests/test_engine_<concern>.py`` run the same tests against both.
"""

from __future__ import annotations

import re
from typing import Any

from shared.engine.records import Record, RecordKind
from shared.engine.redis import connect
from shared.engine.redis.codec import decode_record
from shared.engine.redis.connect import AnyRedis, RedisTarget
from shared.engine.redis.counters import RedisCounters
from shared.engine.redis.done_marks import RedisDoneMarks
from shared.engine.redis.history import RedisHistory
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.marks import RedisMarks, mark_reads
from shared.engine.redis.members import RedisMembers
from shared.engine.redis.pipeline import Command, RedisPipeline
from shared.engine.redis.presence import RedisPresence
from shared.engine.redis.records import RedisRecords
from shared.engine.store import Store

REDIS_POOL_SIZE = 64


class RedisStore(Store):
    def __init__(self, redis: RedisTarget | str, namespace: str) -> None:
        """``redis``: a URL, or a :class:`RedisTarget` (Sentinel, Cluster)."""
        target = RedisTarget.of(redis)
        self._ns = namespace
        self._keys = KeySpace(namespace, clustered=target.cluster)
        # Building the client does not connect, so methods work without start() as well.
        # A blocking pool: a burst (thousands of handshakes at once) waits for a connection
        # instead of failing with MaxConnectionsError as redis-py's default pool does.
        # Replies are bytes (no decode_responses): the concerns cast redis-py's ``bytes | str`` so.
        self.redis: AnyRedis = connect.client(target, max_connections=REDIS_POOL_SIZE, wait=10)
        # This turn's commands, in order, one round trip; the bus of the same process publishes
        # through it too (``real_backends``), so a router's history, publish and done marks share it.
        self.pipeline = RedisPipeline(self.redis)
        self.ordered_across_keys = self.pipeline.ordered_across_keys
        super().__init__(
            records=RedisRecords(self.pipeline, self._keys),
            marks=RedisMarks(self.pipeline, self._keys),
            done_marks=RedisDoneMarks(self.pipeline, self._keys),
            history=RedisHistory(self.pipeline, self._keys),
            presence=RedisPresence(self.pipeline, self._keys),
            members=RedisMembers(self.pipeline, self._keys),
            counters=RedisCounters(self.pipeline, self._keys),
        )

    async def start(self) -> None:
        await self.redis.ping()  # fail fast on a wrong URL instead of on the first request
        await self.pipeline.load_scripts()  # they go as bare EVALSHA

    async def close(self) -> None:
        self.pipeline.close()
        await connect.close_client(self.redis)

    async def destroy(self) -> None:
        """Delete every key of this namespace (tests, teardown). Never touches other namespaces.
        (A cluster client scans every master, and splits the UNLINK by slot.)"""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._ns) + ":*"
        batch: list[Any] = []
        async for key in self.redis.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            await self.redis.unlink(*batch)

    async def get_with_claimed(self, kind: RecordKind, rid: str, keys: list[str]) -> tuple[Record | None, list[bool]]:
        # one pipeline: the record's GET and the marks' in one round trip
        commands: list[Command] = [("GET", self._keys.record(kind, rid)), *mark_reads(self._keys, keys)]
        raw, *marks = await self.pipeline.submit(commands)
        return (None if raw is None else decode_record(raw)), [mark is not None for mark in marks]
