"""Per-user event logs: what each groups-chat user is sent, kept for offline delivery (method 20).

A user's log is the core's user log (``shared.features.inbox.user_log_key``, one History key per
user over every group, bounded by count and age): the routers append every message delivered in
a group (a ``member_log`` room) for each member but its sender, whatever protocol sent it, and
this front appends its own events (group events, receipts), each entry tagged with its group.
The cursor (``RecordKind.GROUPSCHAT_CURSOR``, see ``cursor``) says what was delivered; it only
moves forward. Owns this front's appends, the reads and the cursor's storage; must not decide
who receives what (``hub``, ``groups`` and the router do).
"""

from __future__ import annotations

from typing import Protocol

from shared.config import Settings
from shared.engine.history import History
from shared.engine.records import RecordKind, Records
from shared.features import inbox

from .cursor import Cursor

MAX_CURSORS = 1 << 40


class EventStore(Protocol):
    @property
    def history(self) -> History: ...

    @property
    def records(self) -> Records: ...


class EventLog:
    def __init__(self, settings: Settings, store: EventStore) -> None:
        self.store = store
        self.bounds = inbox.log_bounds(settings)

    async def append(self, users: list[str], event_id: str, raw: bytes, group_id: str) -> None:
        """This front's own event ``raw`` about ``group_id``, for each of ``users``."""
        entry = [(event_id, inbox.log_entry(group_id, raw))]
        for user in users:
            await self.store.history.append(
                inbox.user_log_key(user), entry, self.bounds.max_events, self.bounds.max_age_ms
            )

    async def read(self, user_id: str) -> list[tuple[str, str, bytes]]:
        """The user's kept entries, oldest first: (event id, group id, payload)."""
        key = inbox.user_log_key(user_id)
        newest_first = await self.store.history.latest(key, self.bounds.max_events, self.bounds.max_age_ms)
        return [(event_id, *inbox.read_log_entry(raw)) for event_id, raw in reversed(newest_first)]

    async def cursor(self, user_id: str) -> Cursor:
        return Cursor.from_record(await self.store.records.get(RecordKind.GROUPSCHAT_CURSOR, user_id))

    async def advance(self, user_id: str, cursor: Cursor) -> bool:
        """Save ``cursor`` if it is ahead of the saved one (never back); True if it was written."""
        if cursor.ms <= (await self.cursor(user_id)).ms:
            return False
        record = cursor.to_record()
        if not await self.store.records.put(RecordKind.GROUPSCHAT_CURSOR, user_id, record, cursor.ms):
            await self.store.records.create(RecordKind.GROUPSCHAT_CURSOR, user_id, record, cursor.ms, MAX_CURSORS)
        return True
