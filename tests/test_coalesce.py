"""TurnBatcher: one flush per event-loop turn, order kept, failures reach every submitter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shared.engine.coalesce import TurnBatcher


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


async def test_serial_batches_what_arrives_while_a_flush_runs() -> None:
    flushes: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> None:
        flushes.append(items)
        if len(flushes) == 1:
            await release.wait()  # a slow round trip: later submissions must queue behind it

    batcher: TurnBatcher[int] = TurnBatcher(flush, serial=True)
    first = asyncio.ensure_future(batcher.submit([0]))
    await asyncio.sleep(0.01)
    assert flushes == [[0]]
    later = [asyncio.ensure_future(batcher.submit([n])) for n in range(1, 5)]
    await asyncio.sleep(0.01)
    assert flushes == [[0]]  # nothing else goes out while the first flush is in flight
    release.set()
    await asyncio.gather(first, *later)
    assert flushes == [[0], [1, 2, 3, 4]]
    await batcher.submit([9])  # idle again: sent at once
    assert flushes[-1] == [9]


def _held_flush() -> tuple[list[list[int]], asyncio.Event, Callable[[list[int]], Awaitable[None]]]:
    """A flush that records each batch and holds it until ``release`` is set (a slow peer)."""
    flushes: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> None:
        flushes.append(items)
        await release.wait()

    return flushes, release, flush


async def test_serial_keeps_full_batches_in_line() -> None:
    """Serial flushes run one at a time in submission order (the order a Redis connection
    executes them); a batch that fills up meanwhile is closed and waits for its turn."""
    flushes, release, flush = _held_flush()
    batcher: TurnBatcher[int] = TurnBatcher(flush, serial=True, max_items=2)
    first = asyncio.ensure_future(batcher.submit([0]))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher.submit([n])) for n in range(1, 4)]
    await asyncio.sleep(0.01)
    assert flushes == [[0]]  # [1, 2] is full but waits: nothing overtakes a flush in flight
    release.set()
    await asyncio.gather(first, *later)
    assert flushes == [[0], [1, 2], [3]]


async def test_serial_early_flush_does_not_let_its_timer_fire_the_next_batch() -> None:
    flushes, release, flush = _held_flush()
    batcher: TurnBatcher[int] = TurnBatcher(flush, serial=True, max_items=2)
    full = batcher.submit([0, 1])  # full at once: flushed now, its turn timer still scheduled
    behind = batcher.submit([2])  # queued behind the running flush
    await asyncio.sleep(0.01)
    assert flushes == [[0, 1]]
    release.set()
    await asyncio.gather(full, behind)
    assert flushes == [[0, 1], [2]]


async def test_submit_queues_at_call_time() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        flushes.append(items)

    batcher: TurnBatcher[int] = TurnBatcher(flush, serial=True)
    second_first = [batcher.submit([2]), batcher.submit([1])]  # queued in call order, awaited later
    await second_first[1]
    await second_first[0]
    assert flushes == [[2, 1]]


async def test_each_submitter_gets_the_results_of_its_own_items() -> None:
    async def flush(items: list[int]) -> list[int]:
        return [n * 10 for n in items]

    batcher: TurnBatcher[int] = TurnBatcher(flush, max_items=4)  # the third one fires it early, unsplit
    results = await asyncio.gather(batcher.submit([1, 2]), batcher.submit([3]), batcher.submit([4, 5, 6]))
    assert results == [[10, 20], [30], [40, 50, 60]]


async def test_a_cancelled_submitter_does_not_cancel_the_others() -> None:
    """The flush's future is shared: one submitter cancelled while it runs (a closed
    connection's handler) must not cancel it for the rest of the batch."""
    release = asyncio.Event()
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        await release.wait()
        flushed.append(items)
        return [item * 10 for item in items]

    batcher: TurnBatcher[int] = TurnBatcher(flush)
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    first = asyncio.ensure_future(batcher.submit([1]))
    second = asyncio.ensure_future(batcher.submit([2]))
    await asyncio.sleep(0.01)  # the flush is running
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await second == [20]
    assert first.cancelled() and flushed == [[1, 2]]
    await asyncio.sleep(0.01)
    assert unhandled == []  # no "Task exception was never retrieved" from the flush task
