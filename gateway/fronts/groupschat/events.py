"""Per-user event logs: what each groups-chat user is sent, kept for offline delivery (method 20).

A user's log is a History key of its own (``groupschat-events:<user id>``), so its bounds by count
and age come with it; entries are the encoded events themselves (the bytes a client receives),
keyed by the event id. The cursor (``RecordKind.GROUPSCHAT_CURSOR``) is the newest event timestamp
delivered to the user, written when a connection ends and after each replay, so a reconnect
replays only what was not yet sent. Owns the log keys, the appends and the cursor; must not decide
who receives what (``hub`` and ``groups`` do).
"""

from __future__ import annotations

from typing import Protocol

from shared.config import Settings
from shared.engine.history import History
from shared.engine.records import RecordKind, Records

MAX_CURSORS = 1 << 40


class EventStore(Protocol):
    @property
    def history(self) -> History: ...

    @property
    def records(self) -> Records: ...


def log_key(user_id: str) -> str:
    return f"groupschat-events:{user_id}"


class EventLog:
    def __init__(self, settings: Settings, store: EventStore) -> None:
        self.store = store
        self.limit = settings.groupschat_events_max
        self.max_age_ms = settings.groupschat_events_max_age_seconds * 1000

    async def append(self, users: list[str], event_id: str, raw: bytes) -> None:
        for user in users:
            await self.store.history.append(log_key(user), [(event_id, raw)], self.limit, self.max_age_ms)

    async def read(self, user_id: str) -> list[tuple[str, bytes]]:
        """The user's kept events, oldest first."""
        newest_first = await self.store.history.latest(log_key(user_id), self.limit, self.max_age_ms)
        return newest_first[::-1]

    async def cursor(self, user_id: str) -> int:
        record = await self.store.records.get(RecordKind.GROUPSCHAT_CURSOR, user_id)
        return int(record["ms"]) if record else 0

    async def advance(self, user_id: str, ms: int) -> None:
        """Move the cursor forward to ``ms`` (never back)."""
        if ms <= await self.cursor(user_id):
            return
        if not await self.store.records.put(RecordKind.GROUPSCHAT_CURSOR, user_id, {"ms": ms}, ms):
            await self.store.records.create(RecordKind.GROUPSCHAT_CURSOR, user_id, {"ms": ms}, ms, MAX_CURSORS)
