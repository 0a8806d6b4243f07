"""``History`` (a parley extension): a room's recent delivered MESSAGE frames.

Oldest to newest, as ``(message id, frame bytes)``; bounded by count and age, and entries older
than ``max_age_ms`` are never returned. Routers write it as they deliver; the gateway and the
control plane read it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable


class History(ABC):
    @abstractmethod
    def append(
        self, room_id: str, items: list[tuple[str, bytes]], max_messages: int, max_age_ms: int
    ) -> Awaitable[None]:
        """Append in order, then trim to the newest ``max_messages`` within ``max_age_ms``.
        Ordered at call time (``shared.engine.store``)."""

    @abstractmethod
    def remove(self, room_id: str, message_id: str) -> Awaitable[bool]:
        """Remove one message (it was deleted); True if it was there. Ordered at call time."""

    @abstractmethod
    async def latest(
        self, room_id: str, limit: int, max_age_ms: int, before: str | None = None
    ) -> list[tuple[str, bytes]]:
        """Up to ``limit`` messages, newest first, older than message ``before`` if given (a
        ``before`` no longer in history gives an empty page)."""

    @abstractmethod
    async def after(
        self, room_id: str, after: str, limit: int, max_age_ms: int
    ) -> tuple[list[tuple[str, bytes]], bool]:
        """Up to ``limit`` messages after message ``after``, oldest first, and whether ``after``
        was found; when it was not (expired, trimmed or unknown) the page starts at the oldest
        message kept and the caller must treat the history as having a gap."""

    @abstractmethod
    async def clear(self, room_id: str) -> None: ...
