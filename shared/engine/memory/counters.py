"""In-process :class:`~shared.engine.counters.Counters`.

Fixed windows follow the wall clock, as on Redis, so a window means the same span everywhere;
member deadlines are monotonic (``shared.engine.memory.monotonic``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from typing import TypeVar

from shared.clock import now_ms
from shared.engine.counters import Counters
from shared.engine.memory.monotonic import monotonic_ms

_T = TypeVar("_T")

# Windows older than the previous one are dropped past this many, so counters never read
# again do not grow without bound.
_SWEEP_ABOVE = 10_000


async def _ready(value: _T) -> _T:
    """An awaitable of a result already computed (methods that are ordered at call time)."""
    return value


class MemoryCounters(Counters):
    def __init__(self) -> None:
        self._windows: dict[tuple[str, int], int] = {}
        self._reports: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)  # member -> (value, expiry)

    async def hit(self, key: str, window_ms: int) -> int:
        window = now_ms() // window_ms
        slot = (key, window)
        count = self._windows.get(slot, 0) + 1
        self._windows[slot] = count
        if len(self._windows) > _SWEEP_ABOVE:
            self._windows = {k: v for k, v in self._windows.items() if k[1] >= window - 1}
        return count

    async def report(self, group: str, member: str, value: int, ttl_ms: int) -> None:
        self._reports[group][member] = (value, monotonic_ms() + ttl_ms)

    async def reports(self, group: str) -> dict[str, int]:
        now = monotonic_ms()
        return {m: value for m, (value, expiry) in self._reports[group].items() if expiry > now}

    def _live_values(self, group: str) -> dict[str, tuple[int, int]]:
        """``group``'s live members (the dead ones forgotten, as Redis forgets them)."""
        now = monotonic_ms()
        live = {m: entry for m, entry in self._reports[group].items() if entry[1] > now}
        self._reports[group] = live
        return live

    def reserve(self, group: str, member: str, limit: int, ttl_ms: int) -> Awaitable[bool]:
        # applied now, not when awaited: "ordered at call time" like RedisCounters' pipeline
        live = self._live_values(group)
        if sum(value for value, _ in live.values()) >= limit:
            return _ready(False)
        live[member] = (live.get(member, (0, 0))[0] + 1, monotonic_ms() + ttl_ms)
        return _ready(True)

    def unreserve(self, group: str, member: str) -> Awaitable[None]:
        live = self._live_values(group)
        if member in live:
            value, deadline = live[member]
            live[member] = (max(value - 1, 0), deadline)
        return _ready(None)
