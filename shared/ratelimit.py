"""Exact sliding-window rate limit: at most ``limit`` events in any ``window_ms`` span.

A sliding log of the last ``limit`` accepted timestamps: O(1) per check, ``limit`` ints of
memory. Fixed windows or token buckets would let twice the limit through around a boundary.
"""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    __slots__ = ("limit", "window_ms", "_accepted")

    def __init__(self, limit: int, window_ms: int = 1000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._accepted: deque[int] = deque()

    def allow(self, now_ms: int) -> bool:
        accepted = self._accepted
        while len(accepted) > self.limit:  # the limit was lowered since
            accepted.popleft()
        if len(accepted) == self.limit:
            if now_ms - accepted[0] < self.window_ms:
                return False
            accepted.popleft()
        accepted.append(now_ms)
        return True

    def idle(self, now_ms: int) -> bool:
        """Nothing accepted within the window: forgetting this limiter loses nothing."""
        return not self._accepted or now_ms - self._accepted[-1] >= self.window_ms
