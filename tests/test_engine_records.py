"""Records conformance: the same tests against the memory and the Redis engine (``engine_store``
in conftest; the Redis one runs on a fresh namespace deleted after each test)."""

from __future__ import annotations

import asyncio

import pytest

from shared.engine.records import QuotaExceeded, Record, RecordKind, Records
from shared.engine.store import Store

ROOM, LOGGING_CONFIGURATION = RecordKind.ROOM, RecordKind.LOGGING_CONFIGURATION


@pytest.fixture
def records(engine_store: Store) -> Records:
    return engine_store.records


async def test_create_get_put_delete_count(records: Records) -> None:
    record = {"arn": "arn:1", "name": "zoë ☕", "tags": {"a": "b"}, "n": 3, "ok": True, "none": None}
    await records.create(ROOM, "r1", record, 1000, limit=10)
    assert await records.get(ROOM, "r1") == record
    assert await records.get(ROOM, "missing") is None
    assert await records.count(ROOM) == 1

    updated = {**record, "name": "renamed"}
    assert await records.put(ROOM, "r1", updated, 2000) is True
    assert await records.get(ROOM, "r1") == updated
    assert await records.count(ROOM) == 1

    assert await records.delete(ROOM, "r1") is True
    assert await records.delete(ROOM, "r1") is False
    assert await records.get(ROOM, "r1") is None
    assert await records.count(ROOM) == 0


async def test_put_does_not_create(records: Records) -> None:
    assert await records.put(ROOM, "ghost", {"x": 1}, 1) is False
    assert await records.get(ROOM, "ghost") is None
    assert await records.count(ROOM) == 0
    assert await records.page(ROOM, None, 10) == []


async def test_kinds_are_separate(records: Records) -> None:
    await records.create(ROOM, "same", {"kind": "room"}, 1, limit=1)
    await records.create(LOGGING_CONFIGURATION, "same", {"kind": "lc"}, 1, limit=1)
    assert await records.get(ROOM, "same") == {"kind": "room"}
    assert await records.get(LOGGING_CONFIGURATION, "same") == {"kind": "lc"}
    assert await records.delete(ROOM, "same")
    assert await records.count(LOGGING_CONFIGURATION) == 1


async def test_quota(records: Records) -> None:
    for i in range(3):
        await records.create(ROOM, f"r{i}", {"i": i}, i, limit=3)
    with pytest.raises(QuotaExceeded) as raised:
        await records.create(ROOM, "r3", {}, 3, limit=3)
    assert (raised.value.kind, raised.value.limit) == (ROOM, 3)
    assert await records.get(ROOM, "r3") is None
    assert await records.count(ROOM) == 3
    await records.delete(ROOM, "r0")  # deleting frees a slot
    await records.create(ROOM, "r3", {}, 3, limit=3)
    assert await records.count(ROOM) == 3


async def test_concurrent_creates_never_exceed_limit(records: Records) -> None:
    async def attempt(i: int) -> bool:
        try:
            await records.create(ROOM, f"r{i}", {"i": i}, i, limit=7)
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(60)))
    assert sum(results) == 7
    assert await records.count(ROOM) == 7
    created = [i for i, ok in enumerate(results) if ok]
    for i in range(60):
        assert (await records.get(ROOM, f"r{i}") is not None) == (i in created)


@pytest.mark.integration
async def test_concurrent_creates_from_several_replicas(redis_store: Store, redis_url: str, namespace: str) -> None:
    from shared.engine.redis.store import RedisStore

    replicas = [redis_store] + [RedisStore(redis_url, namespace) for _ in range(3)]
    try:

        async def attempt(i: int) -> bool:
            try:
                await replicas[i % len(replicas)].records.create(ROOM, f"r{i}", {}, i, limit=5)
            except QuotaExceeded:
                return False
            return True

        results = await asyncio.gather(*(attempt(i) for i in range(80)))
        assert sum(results) == 5
        assert await redis_store.records.count(ROOM) == 5
    finally:
        for replica in replicas[1:]:
            await replica.close()


def test_kinds_are_their_key_parts() -> None:
    """Kinds are a StrEnum so they format as the strings the Redis keys always held."""
    assert (f"{ROOM}", f"{LOGGING_CONFIGURATION}") == ("room", "logging-configuration")


# --- paging ---------------------------------------------------------------------------------
ROWS = [(100, "a"), (100, "c"), (200, "d"), (50, "e"), (100, "f"), (100, "b"), (300, "Z"), (300, "z")]
EXPECTED = [(300, "z"), (300, "Z"), (200, "d"), (100, "f"), (100, "c"), (100, "b"), (100, "a"), (50, "e")]


async def _fill(records: Records) -> None:
    for updated, rid in ROWS:
        await records.create(ROOM, rid, {"id": rid, "u": updated}, updated, limit=100)


async def test_page_newest_first_ties_by_id_desc(records: Records) -> None:
    await _fill(records)
    rows = await records.page(ROOM, None, 100)
    assert [(u, rid) for u, rid, _ in rows] == EXPECTED
    assert all(record == {"id": rid, "u": u} for u, rid, record in rows)
    assert [(u, rid) for u, rid, _ in await records.page(ROOM, None, 3)] == EXPECTED[:3]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
async def test_page_cursor_walks_everything_once(records: Records, size: int) -> None:
    await _fill(records)
    seen: list[tuple[int, str]] = []
    after: tuple[int, str] | None = None
    for _ in range(len(ROWS) + 1):  # bounded: a cursor that does not advance must fail, not hang
        rows = await records.page(ROOM, after, size)
        assert len(rows) <= size
        if not rows:
            break
        seen.extend((u, rid) for u, rid, _ in rows)
        after = (rows[-1][0], rows[-1][1])
    assert seen == EXPECTED


async def test_page_cursor_is_strictly_after(records: Records) -> None:
    await _fill(records)

    def ids(rows: list[tuple[int, str, Record]]) -> list[str]:
        return [rid for _, rid, _ in rows]

    assert ids(await records.page(ROOM, (100, "c"), 10)) == ["b", "a", "e"]
    # The cursor need not exist any more (deleted or updated since): same position.
    assert ids(await records.page(ROOM, (100, "bb"), 10)) == ["b", "a", "e"]
    assert ids(await records.page(ROOM, (150, "x"), 2)) == ["f", "c"]
    assert ids(await records.page(ROOM, (50, "e"), 10)) == []
    assert ids(await records.page(ROOM, (1000, ""), 1)) == ["z"]


async def test_put_moves_record_to_front_and_delete_removes_it(records: Records) -> None:
    await _fill(records)
    assert await records.put(ROOM, "a", {"id": "a", "u": 400}, 400)
    assert await records.delete(ROOM, "d")
    rows = await records.page(ROOM, None, 100)
    assert [(u, rid) for u, rid, _ in rows][:3] == [(400, "a"), (300, "z"), (300, "Z")]
    assert "d" not in [rid for _, rid, _ in rows]
    assert len(rows) == len(ROWS) - 1
