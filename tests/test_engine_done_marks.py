"""Done marks conformance: the same tests against the memory and the Redis engine
(``engine_store``)."""

from __future__ import annotations

import pytest

from shared.engine.done_marks import DoneMarks
from shared.engine.store import Store


@pytest.fixture
def marks(engine_store: Store) -> DoneMarks:
    return engine_store.done_marks


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
