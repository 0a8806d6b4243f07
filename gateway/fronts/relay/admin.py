"""Becoming a relay admin: the dashboard key compared in constant time, attempts rate-limited.

Owns the per-client-address window of admin attempts on this replica (bounded in memory).
Must not: log or echo the key, or keep one that was offered.
"""

from __future__ import annotations

import hmac

from shared.features.ratelimit import SlidingWindow

ATTEMPTS_PER_WINDOW = 10  # admin attempts per client address and per connection
WINDOW_MS = 60_000
MAX_TRACKED_ADDRESSES = 10_000


class AdminKeys:
    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._by_address: dict[str, SlidingWindow] = {}

    def allow_attempt(self, address: str, connection: SlidingWindow, now_ms: int) -> bool:
        """Count one attempt from ``address`` on a connection (its own ``connection`` window);
        False: over either limit, the key is not even compared."""
        window = self._by_address.get(address)
        if window is None:
            if len(self._by_address) >= MAX_TRACKED_ADDRESSES:
                self._forget_idle(now_ms)
            window = self._by_address[address] = SlidingWindow(ATTEMPTS_PER_WINDOW, WINDOW_MS)
        return connection.allow(now_ms) and window.allow(now_ms)

    def matches(self, offered: str) -> bool:
        """Constant time in the offered key's content; no key configured: nobody is admin."""
        if not self._key:
            return False
        return hmac.compare_digest(offered.encode(), self._key)

    def _forget_idle(self, now_ms: int) -> None:
        for address in [a for a, w in self._by_address.items() if w.idle(now_ms)]:
            del self._by_address[address]
        if len(self._by_address) >= MAX_TRACKED_ADDRESSES:  # all busy: start over rather than grow
            self._by_address.clear()


def connection_window() -> SlidingWindow:
    return SlidingWindow(ATTEMPTS_PER_WINDOW, WINDOW_MS)
