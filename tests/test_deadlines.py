"""gateway/deadlines.py: many deadlines on one timer."""

from __future__ import annotations

import asyncio

from gateway.deadlines import COMPACT_SLACK, Deadlines


async def test_deadlines_fire_in_order_once_and_discarded_ones_never() -> None:
    fired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(fired.append)
    deadlines.add("late", 0.15)
    deadlines.add("early", 0.05)
    deadlines.add("gone", 0.01)
    deadlines.discard("gone")
    deadlines.add("moved", 0.02)
    deadlines.add("moved", 0.10)  # replaced: fires once, at the later time
    await asyncio.sleep(0.07)
    assert fired == ["early"]
    await asyncio.sleep(0.15)
    assert fired == ["early", "moved", "late"]
    assert len(deadlines) == 0


async def test_churn_cannot_grow_the_heap_past_twice_the_live() -> None:
    deadlines: Deadlines[int] = Deadlines(lambda key: None)
    for key in range(10_000):
        deadlines.add(key, 3600)
        if key >= 10:
            deadlines.discard(key - 10)  # connections that came and went
    assert len(deadlines) == 10
    assert len(deadlines._heap) <= 2 * len(deadlines) + COMPACT_SLACK + 1
    deadlines.close()


async def test_close_cancels_what_is_pending() -> None:
    fired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(fired.append)
    deadlines.add("a", 0.01)
    deadlines.close()
    await asyncio.sleep(0.05)
    assert fired == []
