"""``Counters``: counts and values every replica shares.

Two kinds: fixed-window event counts (:meth:`Counters.hit`, the control plane's throttles), and
*groups* whose members each hold a value that lives until the member's deadline (a gateway's
connection count, a router's liveness, the connection quota reserved against them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable


class Counters(ABC):
    @abstractmethod
    async def hit(self, key: str, window_ms: int) -> int:
        """Count one event in the fixed window holding now; return the window's count."""

    @abstractmethod
    async def report(self, group: str, member: str, value: int, ttl_ms: int) -> None:
        """Publish ``member``'s current ``value`` in ``group`` (e.g. a gateway's connection
        count); it is forgotten ``ttl_ms`` after the last report, so a dead process drops out.
        Ordered at call time (``shared.engine.store``) when it is awaited at once."""

    @abstractmethod
    async def reports(self, group: str) -> dict[str, int]:
        """Live members of ``group`` and their last reported values."""

    @abstractmethod
    def reserve(self, group: str, member: str, limit: int, ttl_ms: int) -> Awaitable[bool]:
        """Atomically: if the live members' values in ``group`` sum to less than ``limit``, add 1
        to ``member``'s value (0 if it was not live) and keep it live ``ttl_ms`` more; True if it
        did. Ordered at call time. A quota shared by processes: each holds what it reserved, and
        a dead process's reservations stop counting with its deadline."""

    @abstractmethod
    def unreserve(self, group: str, member: str) -> Awaitable[None]:
        """Subtract 1 from ``member``'s value, never below 0, and only while it is live (a member
        that was forgotten holds nothing). Ordered at call time."""
