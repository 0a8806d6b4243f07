"""The ``Store`` interface: state every replica of every component must agree on.

Records are JSON-able dicts kept per *kind* (``room``, ``logging-configuration``); the control
plane owns their shape (see ``shared.models``). Implementations: ``shared.memory.MemoryStore``
(embedded mode, tests) and ``shared.redis_store.RedisStore`` (production). Both pass the same
conformance suite in ``tests/test_store.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

Record = dict[str, Any]

ROOM = "room"
LOGGING_CONFIGURATION = "logging-configuration"


class QuotaExceeded(Exception):
    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(f"quota of {limit} {kind} resources reached")
        self.kind = kind
        self.limit = limit


class Store(ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # --- resources --------------------------------------------------------------------------
    @abstractmethod
    async def create(self, kind: str, rid: str, record: Record, updated_ms: int, limit: int) -> None:
        """Insert a new record; raise :class:`QuotaExceeded` if ``kind`` already has ``limit``."""

    @abstractmethod
    async def put(self, kind: str, rid: str, record: Record, updated_ms: int) -> bool:
        """Replace an existing record. False if it does not exist (it is not created)."""

    @abstractmethod
    async def get(self, kind: str, rid: str) -> Record | None: ...

    @abstractmethod
    async def delete(self, kind: str, rid: str) -> bool: ...

    @abstractmethod
    async def count(self, kind: str) -> int: ...

    @abstractmethod
    async def page(self, kind: str, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str, Record]]:
        """Up to ``limit`` records as ``(updated_ms, id, record)``, newest update first, strictly
        after the ``(updated_ms, id)`` cursor in that order."""

    # --- one-shot keys (single-use tokens, redelivery de-duplication) ------------------------
    @abstractmethod
    async def claim(self, key: str, ttl_ms: int) -> bool:
        """Atomically mark ``key``; True only for the first caller while the mark lives."""

    @abstractmethod
    async def claimed(self, keys: list[str]) -> list[bool]:
        """Which of ``keys`` are currently marked."""

    @abstractmethod
    async def claim_many(self, keys: list[str], ttl_ms: int) -> None:
        """Mark every key (no answer needed)."""

    @abstractmethod
    async def release(self, key: str) -> bool:
        """Remove a mark before it expires; True if it was there."""

    # --- counters ------------------------------------------------------------------------
    @abstractmethod
    async def hit(self, key: str, window_ms: int) -> int:
        """Count one event in the fixed window holding now; return the window's count."""

    @abstractmethod
    async def report(self, group: str, member: str, value: int, ttl_ms: int) -> None:
        """Publish ``member``'s current ``value`` in ``group`` (e.g. a gateway's connection
        count); it is forgotten ``ttl_ms`` after the last report, so a dead process drops out."""

    @abstractmethod
    async def reports(self, group: str) -> dict[str, int]:
        """Live members of ``group`` and their last reported values."""
