"""Counters conformance: the same tests against the memory and the Redis engine (``engine_store``)."""

from __future__ import annotations

import asyncio

import pytest

from shared.clock import now_ms
from shared.engine.counters import Counters
from shared.engine.store import Store


@pytest.fixture
def counters(engine_store: Store) -> Counters:
    return engine_store.counters


async def _sleep_to_window_start(window_ms: int) -> None:
    """Sleep until just after a window boundary, so a test's hits all land in one window."""
    now = now_ms()
    await asyncio.sleep(((now // window_ms + 1) * window_ms - now + 5) / 1000)


async def test_hit_counts_per_fixed_window(counters: Counters) -> None:
    window_ms = 300
    await _sleep_to_window_start(window_ms)
    assert [await counters.hit("conn:1", window_ms) for _ in range(3)] == [1, 2, 3]
    assert await counters.hit("conn:2", window_ms) == 1
    await _sleep_to_window_start(window_ms)
    assert await counters.hit("conn:1", window_ms) == 1


async def test_concurrent_hits_are_all_counted(counters: Counters) -> None:
    window_ms = 2000
    await _sleep_to_window_start(window_ms)
    counts = await asyncio.gather(*(counters.hit("room:busy", window_ms) for _ in range(40)))
    assert sorted(counts) == list(range(1, 41))


async def test_reports_expire_per_member(counters: Counters) -> None:
    assert await counters.reports("gateways") == {}
    await counters.report("gateways", "g1", 10, 5000)
    await counters.report("gateways", "g2", 20, 150)
    await counters.report("routers", "r1", 1, 5000)
    assert await counters.reports("gateways") == {"g1": 10, "g2": 20}
    await counters.report("gateways", "g1", 11, 5000)  # the last value wins
    assert await counters.reports("gateways") == {"g1": 11, "g2": 20}
    await asyncio.sleep(0.25)
    assert await counters.reports("gateways") == {"g1": 11}
    await counters.report("gateways", "g2", 21, 5000)  # a member that comes back is live again
    assert await counters.reports("gateways") == {"g1": 11, "g2": 21}
    assert await counters.reports("routers") == {"r1": 1}


async def test_report_refresh_extends_life(counters: Counters) -> None:
    await counters.report("g", "m", 1, 400)
    await asyncio.sleep(0.25)
    await counters.report("g", "m", 2, 400)
    await asyncio.sleep(0.25)  # past the first deadline, before the second
    assert await counters.reports("g") == {"m": 2}


async def test_reserve_up_to_the_limit_over_all_members(counters: Counters) -> None:
    assert await counters.reserve("q", "a", 3, 5000) is True
    assert await counters.reserve("q", "a", 3, 5000) is True
    assert await counters.reserve("q", "b", 3, 5000) is True
    assert await counters.reserve("q", "b", 3, 5000) is False  # the limit is the group's, not a member's
    assert await counters.reserve("q", "c", 3, 5000) is False
    assert await counters.reports("q") == {"a": 2, "b": 1}
    await counters.unreserve("q", "a")
    assert await counters.reserve("q", "c", 3, 5000) is True
    assert await counters.reports("q") == {"a": 1, "b": 1, "c": 1}


async def test_reported_values_count_towards_reservations(counters: Counters) -> None:
    await counters.report("q", "a", 3, 5000)
    assert await counters.reserve("q", "b", 3, 5000) is False
    await counters.report("q", "a", 2, 5000)  # a report sets the value, reservations included
    assert await counters.reserve("q", "a", 3, 5000) is True
    assert await counters.reports("q") == {"a": 3}


async def test_dead_members_reservations_stop_counting(counters: Counters) -> None:
    assert await counters.reserve("q", "dead", 2, 150) is True
    assert await counters.reserve("q", "dead", 2, 150) is True
    assert await counters.reserve("q", "live", 2, 5000) is False
    await asyncio.sleep(0.25)
    assert await counters.reserve("q", "live", 2, 5000) is True
    await counters.unreserve("q", "dead")  # forgotten: nothing to give back, and it stays forgotten
    assert await counters.reports("q") == {"live": 1}
    assert await counters.reserve("q", "dead", 2, 5000) is True  # back, from 0
    assert await counters.reports("q") == {"live": 1, "dead": 1}


async def test_reserve_keeps_the_member_live(counters: Counters) -> None:
    assert await counters.reserve("q", "m", 10, 400) is True
    await asyncio.sleep(0.25)
    assert await counters.reserve("q", "m", 10, 400) is True
    await asyncio.sleep(0.25)  # past the first deadline, before the second
    assert await counters.reports("q") == {"m": 2}


async def test_unreserve_never_goes_below_zero(counters: Counters) -> None:
    await counters.unreserve("q", "nobody")
    assert await counters.reports("q") == {}
    assert await counters.reserve("q", "m", 1, 5000) is True
    await counters.unreserve("q", "m")
    await counters.unreserve("q", "m")
    assert await counters.reports("q") == {"m": 0}
    assert await counters.reserve("q", "m", 1, 5000) is True
    assert await counters.reserve("q", "m", 1, 5000) is False


async def test_concurrent_reservations_never_exceed_the_limit(counters: Counters) -> None:
    granted = await asyncio.gather(*(counters.reserve("q", f"m{n % 4}", 10, 5000) for n in range(40)))
    assert granted.count(True) == 10
    assert sum((await counters.reports("q")).values()) == 10


async def test_reservations_and_reports_take_effect_in_call_order(counters: Counters) -> None:
    first = counters.reserve("q", "a", 1, 5000)
    second = counters.reserve("q", "b", 1, 5000)
    assert await second is False  # awaited first, but called second
    assert await first is True
    # a reservation issued before a report is overwritten by it: the reporter counts what it issued
    pending = counters.reserve("q", "a", 5, 5000)
    await counters.report("q", "a", 4, 5000)
    assert await pending is True
    assert await counters.reports("q") == {"a": 4}
    releasing = counters.unreserve("q", "a")
    await counters.report("q", "a", 3, 5000)
    await releasing
    assert await counters.reports("q") == {"a": 3}
