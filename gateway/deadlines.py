"""Many far-off deadlines on one timer: the gateway's chat-session expiries.

``loop.call_later`` per connection keeps a TimerHandle, its arguments and an entry in the
loop's heap for the connection's whole life (about 0.7 KiB of each idle connection, next to ~13
KiB in all). Here the deadlines sit in one heap of ``(when, key)`` with one loop timer armed for
the earliest; a discarded deadline is dropped lazily when it comes up, or when discarded ones
outnumber the live (the heap is rebuilt), so churn cannot grow it past twice the live deadlines.

Must not: know what a key is; ``fire(key)`` is the caller's.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
COMPACT_SLACK = 64  # dead entries tolerated before the first rebuild


class Deadlines(Generic[K]):
    def __init__(self, fire: Callable[[K], None]) -> None:
        self._fire = fire
        self._heap: list[tuple[float, int, K]] = []
        self._when: dict[K, float] = {}  # the live deadline of each key
        self._order = 0  # ties broken by insertion, never by comparing keys
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._when)

    def add(self, key: K, delay: float) -> None:
        """Call ``fire(key)`` in ``delay`` seconds (replacing any deadline ``key`` had)."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        self._when[key] = when
        self._order += 1
        heapq.heappush(self._heap, (when, self._order, key))
        if self._timer is None or when < self._timer.when():
            self._arm(loop)

    def discard(self, key: K) -> None:
        self._when.pop(key, None)
        if len(self._heap) > 2 * len(self._when) + COMPACT_SLACK:
            self._heap = [(when, order, k) for when, order, k in self._heap if self._when.get(k) == when]
            heapq.heapify(self._heap)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._when.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._heap and self._when.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # discarded or replaced since
        if self._heap:
            self._timer = loop.call_at(self._heap[0][0], self._run)

    def _run(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._when.get(key) == when:
                del self._when[key]
                self._fire(key)
        self._arm(loop)
