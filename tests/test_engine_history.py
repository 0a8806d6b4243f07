"""History conformance: the same tests against the memory and the Redis engine (``engine_store``)."""

from __future__ import annotations

import asyncio

import pytest

from shared.engine.history import History
from shared.engine.store import Store

DAY = 86_400_000


@pytest.fixture
def history(engine_store: Store) -> History:
    return engine_store.history


async def test_history_keeps_the_newest_in_order(history: History) -> None:
    await history.append("r1", [(f"m{n}", f"frame{n}".encode()) for n in range(5)], 4, DAY)
    await history.append("r1", [("m5", b"frame5")], 4, DAY)
    assert [mid for mid, _ in await history.latest("r1", 10, DAY)] == ["m5", "m4", "m3", "m2"]
    assert await history.latest("r1", 2, DAY) == [("m5", b"frame5"), ("m4", b"frame4")]
    assert [mid for mid, _ in await history.latest("r1", 2, DAY, before="m4")] == ["m3", "m2"]
    assert await history.latest("r1", 2, DAY, before="m0") == []  # trimmed cursor
    assert await history.latest("other", 5, DAY) == []


async def test_history_after_reports_gaps(history: History) -> None:
    await history.append("r1", [(f"m{n}", b"x") for n in range(6)], 3, DAY)  # keeps m3..m5
    page, found = await history.after("r1", "m3", 10, DAY)
    assert found and [mid for mid, _ in page] == ["m4", "m5"]
    page, found = await history.after("r1", "m5", 10, DAY)
    assert found and page == []
    page, found = await history.after("r1", "m1", 10, DAY)  # trimmed: a gap
    assert not found and [mid for mid, _ in page] == ["m3", "m4", "m5"]
    page, found = await history.after("r1", "m3", 1, DAY)
    assert [mid for mid, _ in page] == ["m4"]


async def test_history_remove_age_and_clear(history: History) -> None:
    await history.append("r1", [("a", b"1"), ("b", b"2"), ("c", b"3")], 10, 300)
    assert await history.remove("r1", "b") is True
    assert await history.remove("r1", "b") is False
    assert [mid for mid, _ in await history.latest("r1", 10, 300)] == ["c", "a"]
    await asyncio.sleep(0.35)
    assert await history.latest("r1", 10, 300) == []  # aged out
    await history.append("r1", [("d", b"4")], 10, 60_000)
    await history.clear("r1")
    assert await history.latest("r1", 10, 60_000) == []
