"""Store conformance: the same tests against ``MemoryStore`` and ``RedisStore``.

Owns nothing but these tests; the real store runs on a fresh namespace that is deleted after
each test (``redis_store`` fixture in conftest).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.engine.memory import MemoryStore
from shared.engine.store import LOGGING_CONFIGURATION, ROOM, QuotaExceeded, Store


@pytest.fixture(params=["memory", "real"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    real: Store = request.getfixturevalue("redis_store")
    return real


async def _sleep_to_window_start(window_ms: int) -> None:
    """Sleep until just after a window boundary, so a test's hits all land in one window."""
    now_ms = time.time() * 1000
    await asyncio.sleep(((now_ms // window_ms + 1) * window_ms - now_ms + 5) / 1000)


# --- resources ------------------------------------------------------------------------------
async def test_create_get_put_delete_count(store: Store) -> None:
    record = {"arn": "arn:1", "name": "zoë ☕", "tags": {"a": "b"}, "n": 3, "ok": True, "none": None}
    await store.create(ROOM, "r1", record, 1000, limit=10)
    assert await store.get(ROOM, "r1") == record
    assert await store.get(ROOM, "missing") is None
    assert await store.count(ROOM) == 1

    updated = {**record, "name": "renamed"}
    assert await store.put(ROOM, "r1", updated, 2000) is True
    assert await store.get(ROOM, "r1") == updated
    assert await store.count(ROOM) == 1

    assert await store.delete(ROOM, "r1") is True
    assert await store.delete(ROOM, "r1") is False
    assert await store.get(ROOM, "r1") is None
    assert await store.count(ROOM) == 0


async def test_put_does_not_create(store: Store) -> None:
    assert await store.put(ROOM, "ghost", {"x": 1}, 1) is False
    assert await store.get(ROOM, "ghost") is None
    assert await store.count(ROOM) == 0
    assert await store.page(ROOM, None, 10) == []


async def test_kinds_are_separate(store: Store) -> None:
    await store.create(ROOM, "same", {"kind": "room"}, 1, limit=1)
    await store.create(LOGGING_CONFIGURATION, "same", {"kind": "lc"}, 1, limit=1)
    assert await store.get(ROOM, "same") == {"kind": "room"}
    assert await store.get(LOGGING_CONFIGURATION, "same") == {"kind": "lc"}
    assert await store.delete(ROOM, "same")
    assert await store.count(LOGGING_CONFIGURATION) == 1


async def test_quota(store: Store) -> None:
    for i in range(3):
        await store.create(ROOM, f"r{i}", {"i": i}, i, limit=3)
    with pytest.raises(QuotaExceeded) as raised:
        await store.create(ROOM, "r3", {}, 3, limit=3)
    assert (raised.value.kind, raised.value.limit) == (ROOM, 3)
    assert await store.get(ROOM, "r3") is None
    assert await store.count(ROOM) == 3
    await store.delete(ROOM, "r0")  # deleting frees a slot
    await store.create(ROOM, "r3", {}, 3, limit=3)
    assert await store.count(ROOM) == 3


async def test_concurrent_creates_never_exceed_limit(store: Store) -> None:
    async def attempt(i: int) -> bool:
        try:
            await store.create(ROOM, f"r{i}", {"i": i}, i, limit=7)
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(60)))
    assert sum(results) == 7
    assert await store.count(ROOM) == 7
    created = [i for i, ok in enumerate(results) if ok]
    for i in range(60):
        assert (await store.get(ROOM, f"r{i}") is not None) == (i in created)


@pytest.mark.integration
async def test_concurrent_creates_from_several_replicas(redis_store: Store, redis_url: str, namespace: str) -> None:
    from shared.engine.redis.store import RedisStore

    replicas = [redis_store] + [RedisStore(redis_url, namespace) for _ in range(3)]
    try:

        async def attempt(i: int) -> bool:
            try:
                await replicas[i % len(replicas)].create(ROOM, f"r{i}", {}, i, limit=5)
            except QuotaExceeded:
                return False
            return True

        results = await asyncio.gather(*(attempt(i) for i in range(80)))
        assert sum(results) == 5
        assert await redis_store.count(ROOM) == 5
    finally:
        for replica in replicas[1:]:
            await replica.close()


# --- paging ---------------------------------------------------------------------------------
ROWS = [(100, "a"), (100, "c"), (200, "d"), (50, "e"), (100, "f"), (100, "b"), (300, "Z"), (300, "z")]
EXPECTED = [(300, "z"), (300, "Z"), (200, "d"), (100, "f"), (100, "c"), (100, "b"), (100, "a"), (50, "e")]


async def _fill(store: Store) -> None:
    for updated, rid in ROWS:
        await store.create(ROOM, rid, {"id": rid, "u": updated}, updated, limit=100)


async def test_page_newest_first_ties_by_id_desc(store: Store) -> None:
    await _fill(store)
    rows = await store.page(ROOM, None, 100)
    assert [(u, rid) for u, rid, _ in rows] == EXPECTED
    assert all(record == {"id": rid, "u": u} for u, rid, record in rows)
    assert [(u, rid) for u, rid, _ in await store.page(ROOM, None, 3)] == EXPECTED[:3]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
async def test_page_cursor_walks_everything_once(store: Store, size: int) -> None:
    await _fill(store)
    seen: list[tuple[int, str]] = []
    after: tuple[int, str] | None = None
    for _ in range(len(ROWS) + 1):  # bounded: a cursor that does not advance must fail, not hang
        rows = await store.page(ROOM, after, size)
        assert len(rows) <= size
        if not rows:
            break
        seen.extend((u, rid) for u, rid, _ in rows)
        after = (rows[-1][0], rows[-1][1])
    assert seen == EXPECTED


async def test_page_cursor_is_strictly_after(store: Store) -> None:
    await _fill(store)

    def ids(rows):
        return [rid for _, rid, _ in rows]

    assert ids(await store.page(ROOM, (100, "c"), 10)) == ["b", "a", "e"]
    # The cursor need not exist any more (deleted or updated since): same position.
    assert ids(await store.page(ROOM, (100, "bb"), 10)) == ["b", "a", "e"]
    assert ids(await store.page(ROOM, (150, "x"), 2)) == ["f", "c"]
    assert ids(await store.page(ROOM, (50, "e"), 10)) == []
    assert ids(await store.page(ROOM, (1000, ""), 1)) == ["z"]


async def test_put_moves_record_to_front_and_delete_removes_it(store: Store) -> None:
    await _fill(store)
    assert await store.put(ROOM, "a", {"id": "a", "u": 400}, 400)
    assert await store.delete(ROOM, "d")
    rows = await store.page(ROOM, None, 100)
    assert [(u, rid) for u, rid, _ in rows][:3] == [(400, "a"), (300, "z"), (300, "Z")]
    assert "d" not in [rid for _, rid, _ in rows]
    assert len(rows) == len(ROWS) - 1


# --- one-shot keys --------------------------------------------------------------------------
async def test_claim_is_single_use_until_expiry(store: Store) -> None:
    assert await store.claim("tok:1", 150) is True
    assert await store.claim("tok:1", 150) is False
    assert await store.claim("tok:2", 150) is True
    await asyncio.sleep(0.25)
    assert await store.claim("tok:1", 150) is True


async def test_release_lifts_a_mark_early(store: Store) -> None:
    await store.claim_many(["ban:r:u"], 60_000)
    assert await store.release("ban:r:u") is True
    assert await store.claimed(["ban:r:u"]) == [False]
    assert await store.release("ban:r:u") is False
    assert await store.claim("ban:r:u", 1000) is True


async def test_concurrent_claims_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.claim("tok:race", 5000) for _ in range(25)))
    assert results.count(True) == 1


async def test_claimed_and_claim_many(store: Store) -> None:
    assert await store.claimed([]) == []
    await store.claim_many([], 1000)
    assert await store.claimed(["a", "b", "c"]) == [False, False, False]
    await store.claim_many(["a", "b"], 150)
    await store.claim("c", 5000)
    assert await store.claimed(["a", "b", "c", "d"]) == [True, True, True, False]
    assert await store.claim("a", 1000) is False  # claim_many marks like claim does
    await asyncio.sleep(0.25)
    assert await store.claimed(["a", "b", "c"]) == [False, False, True]


async def test_get_with_claimed_reads_a_record_and_marks_together(store: Store) -> None:
    await store.create(ROOM, "r1", {"name": "a"}, 1000, limit=10)
    await store.claim_many(["ban:r1:u1"], 60_000)
    assert await store.get_with_claimed(ROOM, "r1", ["ban:r1:u1", "ban:r1:u2"]) == ({"name": "a"}, [True, False])
    assert await store.get_with_claimed(ROOM, "missing", ["ban:r1:u1"]) == (None, [True])
    assert await store.get_with_claimed(ROOM, "r1", []) == ({"name": "a"}, [])


# --- counters -------------------------------------------------------------------------------
async def test_hit_counts_per_fixed_window(store: Store) -> None:
    window_ms = 300
    await _sleep_to_window_start(window_ms)
    assert [await store.hit("conn:1", window_ms) for _ in range(3)] == [1, 2, 3]
    assert await store.hit("conn:2", window_ms) == 1
    await _sleep_to_window_start(window_ms)
    assert await store.hit("conn:1", window_ms) == 1


async def test_concurrent_hits_are_all_counted(store: Store) -> None:
    window_ms = 2000
    await _sleep_to_window_start(window_ms)
    counts = await asyncio.gather(*(store.hit("room:busy", window_ms) for _ in range(40)))
    assert sorted(counts) == list(range(1, 41))


async def test_reports_expire_per_member(store: Store) -> None:
    assert await store.reports("gateways") == {}
    await store.report("gateways", "g1", 10, 5000)
    await store.report("gateways", "g2", 20, 150)
    await store.report("routers", "r1", 1, 5000)
    assert await store.reports("gateways") == {"g1": 10, "g2": 20}
    await store.report("gateways", "g1", 11, 5000)  # the last value wins
    assert await store.reports("gateways") == {"g1": 11, "g2": 20}
    await asyncio.sleep(0.25)
    assert await store.reports("gateways") == {"g1": 11}
    await store.report("gateways", "g2", 21, 5000)  # a member that comes back is live again
    assert await store.reports("gateways") == {"g1": 11, "g2": 21}
    assert await store.reports("routers") == {"r1": 1}


async def test_report_refresh_extends_life(store: Store) -> None:
    await store.report("g", "m", 1, 400)
    await asyncio.sleep(0.25)
    await store.report("g", "m", 2, 400)
    await asyncio.sleep(0.25)  # past the first deadline, before the second
    assert await store.reports("g") == {"m": 2}


async def test_reserve_up_to_the_limit_over_all_members(store: Store) -> None:
    assert await store.reserve("q", "a", 3, 5000) is True
    assert await store.reserve("q", "a", 3, 5000) is True
    assert await store.reserve("q", "b", 3, 5000) is True
    assert await store.reserve("q", "b", 3, 5000) is False  # the limit is the group's, not a member's
    assert await store.reserve("q", "c", 3, 5000) is False
    assert await store.reports("q") == {"a": 2, "b": 1}
    await store.unreserve("q", "a")
    assert await store.reserve("q", "c", 3, 5000) is True
    assert await store.reports("q") == {"a": 1, "b": 1, "c": 1}


async def test_reported_values_count_towards_reservations(store: Store) -> None:
    await store.report("q", "a", 3, 5000)
    assert await store.reserve("q", "b", 3, 5000) is False
    await store.report("q", "a", 2, 5000)  # a report sets the value, reservations included
    assert await store.reserve("q", "a", 3, 5000) is True
    assert await store.reports("q") == {"a": 3}


async def test_dead_members_reservations_stop_counting(store: Store) -> None:
    assert await store.reserve("q", "dead", 2, 150) is True
    assert await store.reserve("q", "dead", 2, 150) is True
    assert await store.reserve("q", "live", 2, 5000) is False
    await asyncio.sleep(0.25)
    assert await store.reserve("q", "live", 2, 5000) is True
    await store.unreserve("q", "dead")  # forgotten: nothing to give back, and it stays forgotten
    assert await store.reports("q") == {"live": 1}
    assert await store.reserve("q", "dead", 2, 5000) is True  # back, from 0
    assert await store.reports("q") == {"live": 1, "dead": 1}


async def test_reserve_keeps_the_member_live(store: Store) -> None:
    assert await store.reserve("q", "m", 10, 400) is True
    await asyncio.sleep(0.25)
    assert await store.reserve("q", "m", 10, 400) is True
    await asyncio.sleep(0.25)  # past the first deadline, before the second
    assert await store.reports("q") == {"m": 2}


async def test_unreserve_never_goes_below_zero(store: Store) -> None:
    await store.unreserve("q", "nobody")
    assert await store.reports("q") == {}
    assert await store.reserve("q", "m", 1, 5000) is True
    await store.unreserve("q", "m")
    await store.unreserve("q", "m")
    assert await store.reports("q") == {"m": 0}
    assert await store.reserve("q", "m", 1, 5000) is True
    assert await store.reserve("q", "m", 1, 5000) is False


async def test_concurrent_reservations_never_exceed_the_limit(store: Store) -> None:
    granted = await asyncio.gather(*(store.reserve("q", f"m{n % 4}", 10, 5000) for n in range(40)))
    assert granted.count(True) == 10
    assert sum((await store.reports("q")).values()) == 10


async def test_reservations_and_reports_take_effect_in_call_order(store: Store) -> None:
    first = store.reserve("q", "a", 1, 5000)
    second = store.reserve("q", "b", 1, 5000)
    assert await second is False  # awaited first, but called second
    assert await first is True
    # a reservation issued before a report is overwritten by it: the reporter counts what it issued
    pending = store.reserve("q", "a", 5, 5000)
    await store.report("q", "a", 4, 5000)
    assert await pending is True
    assert await store.reports("q") == {"a": 4}
    releasing = store.unreserve("q", "a")
    await store.report("q", "a", 3, 5000)
    await releasing
    assert await store.reports("q") == {"a": 3}


# --- real only ------------------------------------------------------------------------------
@pytest.mark.integration
async def test_keys_are_namespaced_and_destroy_removes_them(redis_url: str, namespace: str) -> None:
    import redis.asyncio as aioredis

    from shared.engine.redis.store import RedisStore

    store, other = RedisStore(redis_url, namespace), RedisStore(redis_url, namespace + "x")
    client = aioredis.Redis.from_url(redis_url)
    try:
        await store.create(ROOM, "r", {}, 1, limit=1)
        await store.claim("k", 10_000)
        await store.hit("h", 10_000)
        await store.report("g", "m", 1, 10_000)
        await other.create(ROOM, "r", {}, 1, limit=1)
        assert await other.count(ROOM) == 1 and await store.count(ROOM) == 1
        keys = [k.decode() async for k in client.scan_iter(match=f"{namespace}:*")]
        assert keys and all(k.startswith(f"{namespace}:") for k in keys)
        await store.destroy()
        assert [k async for k in client.scan_iter(match=f"{namespace}:*")] == []
        assert await other.get(ROOM, "r") == {}  # the neighbouring namespace is untouched
    finally:
        await store.destroy()
        await other.destroy()
        for closable in (store, other):
            await closable.close()
        await client.aclose()


# --- room history ---------------------------------------------------------------------------
async def test_history_keeps_the_newest_in_order(store: Store) -> None:
    day = 86_400_000
    await store.history_append("r1", [(f"m{n}", f"frame{n}".encode()) for n in range(5)], 4, day)
    await store.history_append("r1", [("m5", b"frame5")], 4, day)
    assert [mid for mid, _ in await store.history_latest("r1", 10, day)] == ["m5", "m4", "m3", "m2"]
    assert await store.history_latest("r1", 2, day) == [("m5", b"frame5"), ("m4", b"frame4")]
    assert [mid for mid, _ in await store.history_latest("r1", 2, day, before="m4")] == ["m3", "m2"]
    assert await store.history_latest("r1", 2, day, before="m0") == []  # trimmed cursor
    assert await store.history_latest("other", 5, day) == []


async def test_history_survives_redis_forgetting_its_scripts(redis_store, redis_url: str) -> None:
    """Pipelined writes go as bare EVALSHA; a Redis that lost its scripts (a restart) answers
    NOSCRIPT, and only those commands are sent again, once the scripts are loaded."""
    import redis.asyncio as aioredis

    day = 86_400_000
    await redis_store.history_append("r1", [("m0", b"f0")], 10, day)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.script_flush()
    finally:
        await admin.aclose()
    await asyncio.gather(
        redis_store.history_append("r1", [("m1", b"f1")], 10, day),
        redis_store.history_append("r2", [("n1", b"g1")], 10, day),
        redis_store.claim_many(["k1"], 60_000),  # shares the pipeline; must run exactly once
    )
    assert [mid for mid, _ in await redis_store.history_latest("r1", 10, day)] == ["m1", "m0"]
    assert [mid for mid, _ in await redis_store.history_latest("r2", 10, day)] == ["n1"]
    assert await redis_store.claimed(["k1", "k2"]) == [True, False]


async def test_history_after_reports_gaps(store: Store) -> None:
    day = 86_400_000
    await store.history_append("r1", [(f"m{n}", b"x") for n in range(6)], 3, day)  # keeps m3..m5
    page, found = await store.history_after("r1", "m3", 10, day)
    assert found and [mid for mid, _ in page] == ["m4", "m5"]
    page, found = await store.history_after("r1", "m5", 10, day)
    assert found and page == []
    page, found = await store.history_after("r1", "m1", 10, day)  # trimmed: a gap
    assert not found and [mid for mid, _ in page] == ["m3", "m4", "m5"]
    page, found = await store.history_after("r1", "m3", 1, day)
    assert [mid for mid, _ in page] == ["m4"]


async def test_history_remove_age_and_clear(store: Store) -> None:
    await store.history_append("r1", [("a", b"1"), ("b", b"2"), ("c", b"3")], 10, 300)
    assert await store.history_remove("r1", "b") is True
    assert await store.history_remove("r1", "b") is False
    assert [mid for mid, _ in await store.history_latest("r1", 10, 300)] == ["c", "a"]
    await asyncio.sleep(0.35)
    assert await store.history_latest("r1", 10, 300) == []  # aged out
    await store.history_append("r1", [("d", b"4")], 10, 60_000)
    await store.history_clear("r1")
    assert await store.history_latest("r1", 10, 60_000) == []


# --- presence (parley extension) ------------------------------------------------------------
async def test_presence_first_and_last_connection_per_user(store: Store) -> None:
    assert await store.presence_refresh("gwA", 10_000) is False  # a new holder
    assert await store.presence_refresh("gwA", 10_000) is True
    assert await store.presence_add("r1", "c1", "gwA", "alice", {"name": "Alice ☕"}) is True
    assert await store.presence_add("r1", "c1", "gwA", "alice", {"name": "Alice ☕"}) is False  # idempotent
    assert await store.presence_add("r1", "c2", "gwA", "alice", None) is False  # second connection
    assert await store.presence_add("r1", "c3", "gwA", "bob", {}) is True
    assert await store.presence_add("r2", "c4", "gwA", "alice", {}) is True  # rooms are separate
    listed = sorted(await store.presence_list("r1"))
    assert listed == [("c1", "alice", {"name": "Alice ☕"}), ("c2", "alice", {}), ("c3", "bob", {})]
    assert await store.presence_remove("r1", "c1") is False  # alice still has c2
    assert await store.presence_remove("r1", "c1") is False  # not there any more
    assert await store.presence_remove("r1", "c2") is True  # her last one
    assert await store.presence_remove("r1", "nope") is False
    assert await store.presence_list("r1") == [("c3", "bob", {})]
    assert await store.presence_add("r1", "c5", "gwA", "alice", {}) is True  # back: first again


async def test_presence_dead_holder_is_hidden_then_swept_once(store: Store) -> None:
    await store.presence_refresh("live", 10_000)
    await store.presence_refresh("dying", 150)
    await store.presence_add("r1", "a1", "live", "alice", {})
    await store.presence_add("r1", "a2", "dying", "alice", {})
    await store.presence_add("r1", "b1", "dying", "bob", {"k": "v"})
    await store.presence_add("r2", "b2", "dying", "bob", {})
    assert await store.presence_sweep() == []  # nobody is dead yet
    assert len(await store.presence_list("r1")) == 3
    await asyncio.sleep(0.3)
    assert await store.presence_list("r1") == [("a1", "alice", {})]  # the dead holder's entries are hidden
    # two sweepers at once: every departure is reported exactly once
    first, second = await asyncio.gather(store.presence_sweep(), store.presence_sweep())
    assert sorted(first + second) == [("r1", "bob", {"k": "v"}), ("r2", "bob", {})]  # alice is still on "live"
    assert await store.presence_sweep() == []
    assert await store.presence_list("r2") == []
    assert await store.presence_refresh("dying", 10_000) is False  # swept: it must re-add its entries
    assert await store.presence_remove("r1", "b1") is False  # already gone
    assert await store.presence_remove("r1", "a1") is True  # alice's count forgot the swept a2


async def test_presence_refresh_keeps_a_holder_alive_and_zero_forgets_it(store: Store) -> None:
    await store.presence_refresh("gw", 200)
    await store.presence_add("r", "c", "gw", "u", {})
    for _ in range(3):
        await asyncio.sleep(0.1)
        await store.presence_refresh("gw", 200)
    assert await store.presence_list("r") == [("c", "u", {})]
    assert await store.presence_sweep() == []
    await store.presence_refresh("gw", 0)
    assert await store.presence_list("r") == []


# --- room members (parley extension) --------------------------------------------------------
async def test_members_add_remove_check_and_page(store: Store) -> None:
    assert await store.members_add("r", ["bob", "alice", "bob", "zoë"]) == ["bob", "alice", "zoë"]
    assert await store.members_add("r", ["alice", "carol"]) == ["carol"]
    assert await store.members_check("r", ["alice", "dave", "zoë"]) == [True, False, True]
    assert await store.members_check("other", ["alice"]) == [False]
    assert await store.members_page("r", None, 10) == ["alice", "bob", "carol", "zoë"]
    assert await store.members_page("r", None, 2) == ["alice", "bob"]
    assert await store.members_page("r", "bob", 2) == ["carol", "zoë"]
    assert await store.members_page("r", "zoë", 2) == []
    assert await store.members_remove("r", ["bob", "dave", "bob"]) == ["bob"]
    assert await store.members_page("r", None, 10) == ["alice", "carol", "zoë"]
    await store.members_clear("r")
    assert await store.members_page("r", None, 10) == []
    assert await store.members_check("r", ["alice"]) == [False]
