"""Room config as the router sees it: the Store is the truth, this is a cache of it.

Entries are dropped when a ``room_changed`` control notice arrives (UpdateRoom/DeleteRoom) and
in any case after ``ttl_ms``, since control notices are at-most-once.
"""

from __future__ import annotations

import time

from router.ports import RouterStore
from shared.engine.records import RecordKind
from shared.protocol.models import Room


class RoomCache:
    def __init__(self, store: RouterStore, ttl_ms: int = 5000, max_entries: int = 100_000) -> None:
        self._store = store
        self._ttl_ns = ttl_ms * 1_000_000
        self._max_entries = max_entries
        self._entries: dict[str, tuple[int, Room | None]] = {}

    async def get(self, room_id: str) -> Room | None:
        now = time.monotonic_ns()
        entry = self._entries.get(room_id)
        if entry is not None and now - entry[0] < self._ttl_ns:
            return entry[1]
        record = await self._store.records.get(RecordKind.ROOM, room_id)
        room = None if record is None else Room.from_record(record)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # cheap and rare; the next lookups refill what is live
        self._entries[room_id] = (now, room)
        return room

    def invalidate(self, room_id: str) -> None:
        self._entries.pop(room_id, None)
