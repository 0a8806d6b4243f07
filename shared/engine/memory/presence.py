"""In-process :class:`~shared.engine.presence.Presence`."""

from __future__ import annotations

from collections import defaultdict

from shared.engine.memory.monotonic import monotonic_ms
from shared.engine.presence import Connections, Departures, Presence


class MemoryPresence(Presence):
    def __init__(self) -> None:
        # room -> connection -> (holder, user, attributes); per-(room, user) connection counts;
        # holder -> its (room, connection) entries; holder -> deadline (monotonic ms)
        self._entries: dict[str, dict[str, tuple[str, str, dict[str, str]]]] = defaultdict(dict)
        self._counts: dict[tuple[str, str], int] = {}
        self._held: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._deadlines: dict[str, int] = {}

    async def add(
        self, room_id: str, connection_id: str, holder: str, user_id: str, attributes: dict[str, str] | None
    ) -> bool:
        entries = self._entries[room_id]
        if connection_id in entries:
            return False
        entries[connection_id] = (holder, user_id, dict(attributes or {}))
        self._held[holder].add((room_id, connection_id))
        key = (room_id, user_id)
        self._counts[key] = self._counts.get(key, 0) + 1
        return self._counts[key] == 1

    def _drop(self, room_id: str, connection_id: str) -> tuple[str, dict[str, str]] | None:
        """Remove one entry; (user, attributes) if it was the user's last in the room."""
        entries = self._entries.get(room_id)
        entry = entries.pop(connection_id, None) if entries is not None else None
        if entry is None:
            return None
        if not entries:
            del self._entries[room_id]
        holder, user_id, attributes = entry
        self._held[holder].discard((room_id, connection_id))
        key = (room_id, user_id)
        self._counts[key] -= 1
        if self._counts[key] > 0:
            return None
        del self._counts[key]
        return user_id, attributes

    async def remove(self, room_id: str, connection_id: str) -> bool:
        return self._drop(room_id, connection_id) is not None

    async def refresh(self, holder: str, ttl_ms: int) -> bool:
        known = holder in self._deadlines
        if ttl_ms > 0:
            self._deadlines[holder] = monotonic_ms() + ttl_ms
        else:
            self._deadlines.pop(holder, None)
        return known

    async def list(self, room_id: str) -> Connections:
        now = monotonic_ms()
        return [
            (connection_id, user_id, dict(attributes))
            for connection_id, (holder, user_id, attributes) in self._entries.get(room_id, {}).items()
            if self._deadlines.get(holder, 0) > now
        ]

    async def sweep(self) -> Departures:
        now = monotonic_ms()
        left: Departures = []
        for holder in [h for h, deadline in self._deadlines.items() if deadline <= now]:
            del self._deadlines[holder]
            for room_id, connection_id in sorted(self._held.pop(holder, set())):
                gone = self._drop(room_id, connection_id)
                if gone is not None:
                    left.append((room_id, gone[0], gone[1]))
        return left
