"""Exact sliding-window rate limit: at most ``limit`` events in any ``window_ms`` span.

A sliding log of the accepted timestamps still inside the window: O(1) amortized per check.
Fixed windows or token buckets would let twice the limit through around a boundary.

Memory follows the *rate*, not the limit: timestamps that left the window are dropped on every
check, so the log holds at most ``min(limit, events in the last window)`` ints. Dropping them
only once the log was full made a window with a raised limit (an account-wide quota of 10**6/s,
as the benchmarks set) keep every timestamp up to the limit: about 40 bytes per message, the
routers' steady growth in the issue-18 soak.
"""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    __slots__ = ("limit", "window_ms", "_accepted")

    def __init__(self, limit: int, window_ms: int = 1000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        # Made on first use: an empty deque is ~600 bytes, and every connection holds limiters that
        # most connections (readers) never use.
        self._accepted: deque[int] | None = None

    def allow(self, now_ms: int) -> bool:
        accepted = self._accepted
        if accepted is None:
            accepted = self._accepted = deque()
        oldest_kept = now_ms - self.window_ms
        while accepted and accepted[0] <= oldest_kept:  # out of the window: no longer counts
            accepted.popleft()
        while len(accepted) > self.limit:  # the limit was lowered since
            accepted.popleft()
        if len(accepted) >= self.limit:
            return False
        accepted.append(now_ms)
        return True

    def __len__(self) -> int:
        """Timestamps held (what this limiter costs in memory)."""
        return 0 if self._accepted is None else len(self._accepted)

    def idle(self, now_ms: int) -> bool:
        """Nothing accepted within the window: forgetting this limiter loses nothing."""
        accepted = self._accepted
        return not accepted or now_ms - accepted[-1] >= self.window_ms
