"""TurnBatcher: one flush per event-loop turn, order kept, failures reach every submitter."""

from __future__ import annotations

import asyncio

from shared.coalesce import TurnBatcher


async def test_submissions_in_one_turn_share_one_flush_in_order() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        flushes.append(items)

    batcher: TurnBatcher[int] = TurnBatcher(flush)
    await asyncio.gather(*(batcher.submit([n, n + 100]) for n in range(5)))
    assert flushes == [[0, 100, 1, 101, 2, 102, 3, 103, 4, 104]]
    await batcher.submit([7])  # alone: flushed on the next turn, no waiting for company
    assert flushes[-1] == [7]


async def test_max_items_flushes_early() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        flushes.append(items)

    batcher: TurnBatcher[int] = TurnBatcher(flush, max_items=3)
    await asyncio.gather(*(batcher.submit([n]) for n in range(7)))
    assert flushes == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_failed_flush_fails_every_submitter() -> None:
    async def flush(items: list[int]) -> None:
        raise ConnectionError("down")

    batcher: TurnBatcher[int] = TurnBatcher(flush)
    results = await asyncio.gather(*(batcher.submit([n]) for n in range(3)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)


async def test_linger_collects_across_turns() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        flushes.append(items)

    batcher: TurnBatcher[int] = TurnBatcher(flush, linger=0.02)

    async def late(n: int) -> None:
        await asyncio.sleep(0.005)
        await batcher.submit([n])

    await asyncio.gather(batcher.submit([0]), late(1))
    assert flushes == [[0, 1]]
