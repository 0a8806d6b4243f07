"""Done marks (redelivery de-duplication): the same tests against memory and Redis, and the
rotation rules of router/dedupe.py, which decide when a generation may be dropped."""

from __future__ import annotations

import pytest

from router.dedupe import ShardDedupe
from shared.engine.done_marks import DoneMarks, MemoryDoneMarks
from shared.engine.store import Store


@pytest.fixture(params=["memory", pytest.param("real", marks=pytest.mark.integration)])
def marks(request: pytest.FixtureRequest) -> DoneMarks:
    if request.param == "memory":
        return MemoryDoneMarks()
    store: Store = request.getfixturevalue("redis_store")
    return store.done_marks


# --- the engines ---------------------------------------------------------------------------
async def test_marks_are_found_in_the_generation_and_its_neighbours(marks: DoneMarks) -> None:
    assert await marks.generation(3) == 0
    assert await marks.check(3, 0, []) == []
    await marks.mark(3, 0, ["a", "b"])
    assert await marks.check(3, 0, ["a", "b", "c"]) == [True, True, False]
    assert await marks.check(3, 1, ["a"]) == [True]  # a reader one generation ahead still finds it
    assert await marks.check(3, 2, ["a"]) == [False]
    assert await marks.check(4, 0, ["a"]) == [False]  # shards are apart


async def test_rotation_drops_the_generation_before_the_current_one_whole(marks: DoneMarks) -> None:
    await marks.mark(0, 0, ["old"])
    assert await marks.rotate(0, 0) == 1  # 0 is kept: it is next to the new current generation
    await marks.mark(0, 1, ["new"])
    assert await marks.check(0, 1, ["old", "new"]) == [True, True]
    assert await marks.size(0) == 2
    assert await marks.rotate(0, 1) == 2  # drops 0
    assert await marks.check(0, 2, ["old", "new"]) == [False, True]
    assert await marks.size(0) == 1


async def test_rotation_is_a_compare_and_set(marks: DoneMarks) -> None:
    assert await marks.rotate(1, 0) == 1
    assert await marks.rotate(1, 0) == 1  # a second router that read 0 does not rotate again
    assert await marks.generation(1) == 1


async def test_marks_stay_bounded_over_many_rotations(marks: DoneMarks) -> None:
    for generation in range(50):
        await marks.mark(2, generation, [f"m{generation}-{n}" for n in range(20)])
        assert await marks.rotate(2, generation) == generation + 1
    assert await marks.size(2) <= 2 * 20


# --- when a generation may go (router/dedupe.py) --------------------------------------------
async def _ack() -> None:
    return None


def _dedupe(window_ms: int = 1000) -> ShardDedupe:
    dedupe = ShardDedupe(0, window_ms)
    dedupe.loaded(5, now_ms=0)
    return dedupe


def test_no_rotation_before_a_first_delivery_however_long_the_shard_waits() -> None:
    """No consumer receiving, no rotation: marks outlive an outage of any length."""
    dedupe = _dedupe()
    assert not any(dedupe.rotation_due(t) for t in range(0, 3_600_000, 1000))


def test_rotation_after_a_window_of_deliveries_and_two_clear_checks() -> None:
    dedupe = _dedupe(window_ms=1000)
    dedupe.delivered(False, _ack, now_ms=100)
    assert not dedupe.rotation_due(1050)  # first clear check: must hold again one check later
    assert dedupe.rotation_due(1150)
    fresh = _dedupe(window_ms=1000)
    fresh.delivered(False, _ack, now_ms=100)
    assert not fresh.rotation_due(500) and not fresh.rotation_due(900)  # clear, but within the window
    assert fresh.rotation_due(1100)
    dedupe.rotated(6, now_ms=1200)
    assert not dedupe.rotation_due(1300) and not dedupe.rotation_due(2100)  # a generation lives a window
    assert dedupe.rotation_due(2300)


async def test_an_unacked_redelivered_action_blocks_rotation_until_acked() -> None:
    """A previous owner's actions come back first; until each is checked and acked, nothing goes."""
    dedupe = _dedupe()
    ack = dedupe.delivered(True, _ack, now_ms=0)
    assert not any(dedupe.rotation_due(t) for t in range(0, 10_000, 500))
    await ack()
    assert not dedupe.rotation_due(10_000)  # the ack leaves on the next turn: one more check
    assert dedupe.rotation_due(10_500)


async def test_unacked_marks_in_the_oldest_generation_block_rotation() -> None:
    dedupe = _dedupe()
    ack = dedupe.delivered(False, _ack, now_ms=0)
    ack.marked(4)  # marked in generation 4 = current - 1, the one the next rotation drops
    assert not any(dedupe.rotation_due(t) for t in range(0, 10_000, 500))
    ack.marked(5)  # a retried batch marked it anew in the current generation
    assert not dedupe.rotation_due(10_000) and dedupe.rotation_due(10_500)
    dedupe.rotated(6, now_ms=10_500)
    assert not any(dedupe.rotation_due(t) for t in range(11_000, 20_000, 500))  # 5 is now the oldest
    await ack()
    assert not dedupe.rotation_due(20_000) and dedupe.rotation_due(20_500)


async def test_a_failed_ack_keeps_blocking() -> None:
    """An ack that raised never reached the broker: the action comes back, its mark must stay."""

    async def broken() -> None:
        raise ConnectionError("channel closed")

    dedupe = _dedupe()
    ack = dedupe.delivered(True, broken, now_ms=0)
    with pytest.raises(ConnectionError):
        await ack()
    assert not any(dedupe.rotation_due(t) for t in range(0, 10_000, 500))
