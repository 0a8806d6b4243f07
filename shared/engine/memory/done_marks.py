"""In-process :class:`~shared.engine.done_marks.DoneMarks`: a set per (shard, generation)."""

from __future__ import annotations

from shared.engine.done_marks import NEIGHBOURS, DoneMarks


class MemoryDoneMarks(DoneMarks):
    def __init__(self) -> None:
        self._current: dict[int, int] = {}
        self._marks: dict[tuple[int, int], set[str]] = {}

    async def generation(self, shard: int) -> int:
        return self._current.get(shard, 0)

    async def check(self, shard: int, generation: int, ids: list[str]) -> list[bool]:
        sets = [self._marks.get((shard, generation + offset), set()) for offset in NEIGHBOURS]
        return [any(i in marks for marks in sets) for i in ids]

    async def mark(self, shard: int, generation: int, ids: list[str]) -> None:
        self._marks.setdefault((shard, generation), set()).update(ids)

    async def rotate(self, shard: int, generation: int) -> int:
        if self._current.get(shard, 0) == generation:
            self._current[shard] = generation + 1
            self._marks.pop((shard, generation - 1), None)
        return self._current.get(shard, 0)

    async def size(self, shard: int) -> int:
        return sum(len(marks) for (s, _), marks in self._marks.items() if s == shard)
