"""In-process :class:`~shared.engine.marks.Marks`: key → deadline, expired lazily."""

from __future__ import annotations

from shared.engine.marks import Marks
from shared.engine.memory.monotonic import monotonic_ms

# Expired marks are dropped when read; past this many, claim_many drops them all so that marks
# never read again (bans of users who never come back) do not grow without bound.
_SWEEP_ABOVE = 100_000


class MemoryMarks(Marks):
    def __init__(self) -> None:
        self._marks: dict[str, int] = {}  # key -> expiry (monotonic ms)

    def _live(self, key: str) -> bool:
        expiry = self._marks.get(key)
        if expiry is None:
            return False
        if expiry <= monotonic_ms():
            del self._marks[key]
            return False
        return True

    async def claim(self, key: str, ttl_ms: int) -> bool:
        if self._live(key):
            return False
        self._marks[key] = monotonic_ms() + ttl_ms
        return True

    async def claimed(self, keys: list[str]) -> list[bool]:
        return [self._live(key) for key in keys]

    async def claim_many(self, keys: list[str], ttl_ms: int) -> None:
        expiry = monotonic_ms() + ttl_ms
        for key in keys:
            self._marks[key] = expiry
        if len(self._marks) > _SWEEP_ABOVE:
            now = monotonic_ms()
            self._marks = {k: v for k, v in self._marks.items() if v > now}

    async def release(self, key: str) -> bool:
        live = self._live(key)
        self._marks.pop(key, None)
        return live
