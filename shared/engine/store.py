"""The ``Store`` interface: state every replica of every component must agree on.

Records are JSON-able dicts kept per *kind* (``room``, ``logging-configuration``); the control
plane owns their shape (see ``shared.protocol.models``). Implementations: ``shared.engine.memory.MemoryStore``
(embedded mode, tests) and ``shared.engine.redis.store.RedisStore`` (production). Both pass the same
conformance suite in ``tests/test_store.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Any

from shared.engine.done_marks import DoneMarks

Record = dict[str, Any]

ROOM = "room"
LOGGING_CONFIGURATION = "logging-configuration"


class QuotaExceeded(Exception):
    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(f"quota of {limit} {kind} resources reached")
        self.kind = kind
        self.limit = limit


class Store(ABC):
    # Redelivery de-duplication marks (``shared/engine/done_marks.py``), kept beside the store's other
    # state and sharing its connection and ordered pipeline.
    done_marks: DoneMarks

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

    async def get_with_claimed(self, kind: str, rid: str, keys: list[str]) -> tuple[Record | None, list[bool]]:
        """:meth:`get` and :meth:`claimed` together (one round trip where the store can)."""
        return await self.get(kind, rid), await self.claimed(keys)

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
    def claim_many(self, keys: list[str], ttl_ms: int) -> Awaitable[None]:
        """Mark every key (no answer needed). Ordered at call time (see ``history_append``)."""

    @abstractmethod
    async def release(self, key: str) -> bool:
        """Remove a mark before it expires; True if it was there."""

    # --- room history (a parley extension) --------------------------------------------------
    # A room's recent delivered MESSAGE frames, oldest to newest, as (message id, frame bytes).
    # Bounded by count and age; entries older than ``max_age_ms`` are never returned.
    @abstractmethod
    def history_append(
        self, room_id: str, items: list[tuple[str, bytes]], max_messages: int, max_age_ms: int
    ) -> Awaitable[None]:
        """Append in order, then trim to the newest ``max_messages`` within ``max_age_ms``.

        ``history_append``, ``history_remove`` and ``claim_many`` take effect in the order they
        are called (with the Bus's ``publish_rooms``/``publish_gateway`` of the same process)
        when their awaitables are awaited in that order too: a caller may start several and
        await them afterwards, which lets a pipelined implementation send them together."""

    @abstractmethod
    def history_remove(self, room_id: str, message_id: str) -> Awaitable[bool]:
        """Remove one message (it was deleted); True if it was there. Ordered at call time."""

    @abstractmethod
    async def history_latest(
        self, room_id: str, limit: int, max_age_ms: int, before: str | None = None
    ) -> list[tuple[str, bytes]]:
        """Up to ``limit`` messages, newest first, older than message ``before`` if given (a
        ``before`` no longer in history gives an empty page)."""

    @abstractmethod
    async def history_after(
        self, room_id: str, after: str, limit: int, max_age_ms: int
    ) -> tuple[list[tuple[str, bytes]], bool]:
        """Up to ``limit`` messages after message ``after``, oldest first, and whether ``after``
        was found; when it was not (expired, trimmed or unknown) the page starts at the oldest
        message kept and the caller must treat the history as having a gap."""

    @abstractmethod
    async def history_clear(self, room_id: str) -> None: ...

    # --- presence (a parley extension) ------------------------------------------------------
    # Who is connected to a room now. Each connection's entry belongs to a *holder* (one gateway
    # process incarnation) and is live while the holder's deadline (``presence_refresh``) is in
    # the future; a dead holder's entries are hidden at once and removed by ``presence_sweep``.
    @abstractmethod
    async def presence_add(
        self, room_id: str, connection_id: str, holder: str, user_id: str, attributes: dict[str, str] | None
    ) -> bool:
        """Record a connection; True if the user had no other connection in the room (counting
        those of holders that died but were not swept yet). Adding a connection twice is a no-op."""

    @abstractmethod
    async def presence_remove(self, room_id: str, connection_id: str) -> bool:
        """Forget a connection; True if it was there and was the user's last in the room."""

    @abstractmethod
    async def presence_refresh(self, holder: str, ttl_ms: int) -> bool:
        """Keep ``holder``'s entries live for ``ttl_ms`` more (``ttl_ms`` 0: forget the holder).
        False if the holder was unknown (new, or swept as dead: its entries are gone)."""

    @abstractmethod
    async def presence_list(self, room_id: str) -> list[tuple[str, str, dict[str, str]]]:
        """The room's live connections as ``(connection_id, user_id, attributes)``."""

    @abstractmethod
    async def presence_sweep(self) -> list[tuple[str, str, dict[str, str]]]:
        """Remove every entry of holders whose deadline passed; return ``(room_id, user_id,
        attributes)`` for each user whose last connection in a room went with them. Atomic: each
        removed entry is returned to exactly one caller."""

    # --- room members (a parley extension) ----------------------------------------------------
    @abstractmethod
    async def members_add(self, room_id: str, user_ids: list[str]) -> list[str]:
        """Add members; return those that were not members yet, in the given order."""

    @abstractmethod
    async def members_remove(self, room_id: str, user_ids: list[str]) -> list[str]:
        """Remove members; return those that were members, in the given order."""

    @abstractmethod
    async def members_check(self, room_id: str, user_ids: list[str]) -> list[bool]: ...

    @abstractmethod
    async def members_page(self, room_id: str, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` members in ascending UTF-8 byte order, strictly after ``after``."""

    @abstractmethod
    async def members_clear(self, room_id: str) -> None: ...

    # --- counters ------------------------------------------------------------------------
    @abstractmethod
    async def hit(self, key: str, window_ms: int) -> int:
        """Count one event in the fixed window holding now; return the window's count."""

    # A group's members each hold a value that lives until the member's deadline. ``report``,
    # ``reserve`` and ``unreserve`` of one process take effect in the order they are called
    # (``report`` when its call is awaited at once), like ``history_append``.
    @abstractmethod
    async def report(self, group: str, member: str, value: int, ttl_ms: int) -> None:
        """Publish ``member``'s current ``value`` in ``group`` (e.g. a gateway's connection
        count); it is forgotten ``ttl_ms`` after the last report, so a dead process drops out."""

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
