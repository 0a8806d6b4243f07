"""The Store container: what spans its concerns (``get_with_claimed``, one connection and one
ordered pipeline, one key namespace), on both engines where both have it."""

from __future__ import annotations

import asyncio

import pytest

from shared.engine.records import RecordKind
from shared.engine.store import Store

ROOM = RecordKind.ROOM


async def test_get_with_claimed_reads_a_record_and_marks_together(engine_store: Store) -> None:
    store = engine_store
    await store.records.create(ROOM, "r1", {"name": "a"}, 1000, limit=10)
    await store.marks.claim_many(["ban:r1:u1"], 60_000)
    assert await store.get_with_claimed(ROOM, "r1", ["ban:r1:u1", "ban:r1:u2"]) == ({"name": "a"}, [True, False])
    assert await store.get_with_claimed(ROOM, "missing", ["ban:r1:u1"]) == (None, [True])
    assert await store.get_with_claimed(ROOM, "r1", []) == ({"name": "a"}, [])


# --- Redis only -----------------------------------------------------------------------------
@pytest.mark.integration
async def test_keys_are_namespaced_and_destroy_removes_them(redis_url: str, namespace: str) -> None:
    import redis.asyncio as aioredis

    from shared.engine.redis.store import RedisStore

    store, other = RedisStore(redis_url, namespace), RedisStore(redis_url, namespace + "x")
    client = aioredis.Redis.from_url(redis_url)
    try:
        await store.records.create(ROOM, "r", {}, 1, limit=1)
        await store.marks.claim("k", 10_000)
        await store.counters.hit("h", 10_000)
        await store.counters.report("g", "m", 1, 10_000)
        await other.records.create(ROOM, "r", {}, 1, limit=1)
        assert await other.records.count(ROOM) == 1 and await store.records.count(ROOM) == 1
        keys = [k.decode() async for k in client.scan_iter(match=f"{namespace}:*")]
        assert keys and all(k.startswith(f"{namespace}:") for k in keys)
        assert {f"{namespace}:rec:room:r", f"{namespace}:idx:room", f"{namespace}:mark:k"} <= set(keys)
        await store.destroy()
        assert [k async for k in client.scan_iter(match=f"{namespace}:*")] == []
        assert await other.records.get(ROOM, "r") == {}  # the neighbouring namespace is untouched
    finally:
        await store.destroy()
        await other.destroy()
        for closable in (store, other):
            await closable.close()
        await client.aclose()


@pytest.mark.integration
async def test_history_survives_redis_forgetting_its_scripts(redis_store: Store, redis_url: str) -> None:
    """Pipelined writes go as bare EVALSHA; a Redis that lost its scripts (a restart) answers
    NOSCRIPT, and only those commands are sent again, once the scripts are loaded."""
    import redis.asyncio as aioredis

    day = 86_400_000
    await redis_store.history.append("r1", [("m0", b"f0")], 10, day)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.script_flush()
    finally:
        await admin.aclose()
    await asyncio.gather(
        redis_store.history.append("r1", [("m1", b"f1")], 10, day),
        redis_store.history.append("r2", [("n1", b"g1")], 10, day),
        redis_store.marks.claim_many(["k1"], 60_000),  # shares the pipeline; must run exactly once
    )
    assert [mid for mid, _ in await redis_store.history.latest("r1", 10, day)] == ["m1", "m0"]
    assert [mid for mid, _ in await redis_store.history.latest("r2", 10, day)] == ["n1"]
    assert await redis_store.marks.claimed(["k1", "k2"]) == [True, False]
