"""``Presence`` (a parley extension): who is connected to a room now, over every gateway.

Each connection's entry belongs to a *holder* (one gateway process incarnation) and is live
while the holder's deadline (:meth:`Presence.refresh`) is in the future; a dead holder's entries
are hidden at once and removed by :meth:`Presence.sweep`. "First" and "last" connection of a
user are decided here, atomically, so each is reported once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

# ``(connection_id, user_id, attributes)`` of each live connection of a room.
Connections = list[tuple[str, str, dict[str, str]]]
# ``(room_id, user_id, attributes)`` of each user whose last connection in a room went away.
Departures = list[tuple[str, str, dict[str, str]]]


class Presence(ABC):
    @abstractmethod
    async def add(
        self, room_id: str, connection_id: str, holder: str, user_id: str, attributes: dict[str, str] | None
    ) -> bool:
        """Record a connection; True if the user had no other connection in the room (counting
        those of holders that died but were not swept yet). Adding a connection twice is a no-op."""

    @abstractmethod
    async def remove(self, room_id: str, connection_id: str) -> bool:
        """Forget a connection; True if it was there and was the user's last in the room."""

    @abstractmethod
    async def refresh(self, holder: str, ttl_ms: int) -> bool:
        """Keep ``holder``'s entries live for ``ttl_ms`` more (``ttl_ms`` 0: forget the holder).
        False if the holder was unknown (new, or swept as dead: its entries are gone)."""

    @abstractmethod
    async def list(self, room_id: str) -> Connections:
        """The room's live connections."""

    @abstractmethod
    async def sweep(self) -> Departures:
        """Remove every entry of holders whose deadline passed; return each user whose last
        connection in a room went with them. Atomic: each removed entry is returned to exactly
        one caller."""
