"""``Marks``: one-shot keys that live until their TTL (single-use chat tokens, bans, the
presence sweeper's turn).

A mark is a key and a deadline, nothing more: what a key means is its caller's (``token:…`` in
``gateway.admission``, ``ban:…`` in ``shared.features.bans``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable


class Marks(ABC):
    @abstractmethod
    async def claim(self, key: str, ttl_ms: int) -> bool:
        """Atomically mark ``key``; True only for the first caller while the mark lives."""

    @abstractmethod
    async def claimed(self, keys: list[str]) -> list[bool]:
        """Which of ``keys`` are currently marked."""

    @abstractmethod
    def claim_many(self, keys: list[str], ttl_ms: int) -> Awaitable[None]:
        """Mark every key (no answer needed). Ordered at call time (``shared.engine.store``)."""

    @abstractmethod
    async def release(self, key: str) -> bool:
        """Remove a mark before it expires; True if it was there."""
