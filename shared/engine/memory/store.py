"""In-process ``Store`` for embedded mode (``parley dev``) and tests.

Same contract as the Redis implementation, minus durability: nothing survives the process,
which is the point of embedded mode.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable
from typing import TypeVar

from shared.engine.done_marks import MemoryDoneMarks
from shared.engine.store import QuotaExceeded, Record, Store


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


_T = TypeVar("_T")


async def _ready(value: _T) -> _T:
    """An awaitable of a result already computed (methods that are ordered at call time)."""
    return value


class MemoryStore(Store):
    def __init__(self) -> None:
        self._records: dict[str, dict[str, tuple[int, Record]]] = defaultdict(dict)
        self._marks: dict[str, int] = {}  # key -> expiry (monotonic ms)
        self.done_marks = MemoryDoneMarks()
        self._windows: dict[tuple[str, int], int] = {}
        self._reports: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        self._history: dict[str, list[tuple[int, str, bytes]]] = {}  # (appended at ms, id, frame)
        # presence: room -> connection -> (holder, user, attributes); per-(room, user) counts;
        # holder -> its (room, connection) entries; holder -> deadline (monotonic ms)
        self._presence: dict[str, dict[str, tuple[str, str, dict[str, str]]]] = defaultdict(dict)
        self._presence_counts: dict[tuple[str, str], int] = {}
        self._presence_held: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._presence_deadlines: dict[str, int] = {}
        self._members: dict[str, set[str]] = defaultdict(set)

    async def create(self, kind: str, rid: str, record: Record, updated_ms: int, limit: int) -> None:
        table = self._records[kind]
        if len(table) >= limit:
            raise QuotaExceeded(kind, limit)
        table[rid] = (updated_ms, record)

    async def put(self, kind: str, rid: str, record: Record, updated_ms: int) -> bool:
        table = self._records[kind]
        if rid not in table:
            return False
        table[rid] = (updated_ms, record)
        return True

    async def get(self, kind: str, rid: str) -> Record | None:
        entry = self._records[kind].get(rid)
        return None if entry is None else entry[1]

    async def delete(self, kind: str, rid: str) -> bool:
        return self._records[kind].pop(rid, None) is not None

    async def count(self, kind: str) -> int:
        return len(self._records[kind])

    async def page(self, kind: str, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str, Record]]:
        ordered = sorted(
            ((updated, rid, record) for rid, (updated, record) in self._records[kind].items()),
            key=lambda row: (row[0], row[1]),
            reverse=True,
        )
        if after is not None:
            ordered = [row for row in ordered if (row[0], row[1]) < after]
        return ordered[:limit]

    def _live(self, key: str) -> bool:
        expiry = self._marks.get(key)
        if expiry is None:
            return False
        if expiry <= _monotonic_ms():
            del self._marks[key]
            return False
        return True

    async def claim(self, key: str, ttl_ms: int) -> bool:
        if self._live(key):
            return False
        self._marks[key] = _monotonic_ms() + ttl_ms
        return True

    async def claimed(self, keys: list[str]) -> list[bool]:
        return [self._live(key) for key in keys]

    async def claim_many(self, keys: list[str], ttl_ms: int) -> None:
        expiry = _monotonic_ms() + ttl_ms
        for key in keys:
            self._marks[key] = expiry
        if len(self._marks) > 100_000:  # expire lazily, but never grow without bound
            now = _monotonic_ms()
            self._marks = {k: v for k, v in self._marks.items() if v > now}

    async def release(self, key: str) -> bool:
        live = self._live(key)
        self._marks.pop(key, None)
        return live

    # --- history ---------------------------------------------------------------------------
    def _history_live(self, room_id: str, max_age_ms: int) -> list[tuple[int, str, bytes]]:
        horizon = int(time.time() * 1000) - max_age_ms
        entries = [entry for entry in self._history.get(room_id, ()) if entry[0] > horizon]
        if entries:
            self._history[room_id] = entries
        else:
            self._history.pop(room_id, None)
        return entries

    async def history_append(
        self, room_id: str, items: list[tuple[str, bytes]], max_messages: int, max_age_ms: int
    ) -> None:
        now = int(time.time() * 1000)
        entries = self._history.setdefault(room_id, [])
        entries.extend((now, message_id, frame) for message_id, frame in items)
        del entries[: max(len(entries) - max_messages, 0)]
        self._history_live(room_id, max_age_ms)

    async def history_remove(self, room_id: str, message_id: str) -> bool:
        entries = self._history.get(room_id, [])
        kept = [entry for entry in entries if entry[1] != message_id]
        self._history[room_id] = kept
        return len(kept) != len(entries)

    async def history_latest(
        self, room_id: str, limit: int, max_age_ms: int, before: str | None = None
    ) -> list[tuple[str, bytes]]:
        entries = self._history_live(room_id, max_age_ms)
        if before is not None:
            ids = [message_id for _, message_id, _ in entries]
            entries = entries[: ids.index(before)] if before in ids else []
        return [(message_id, frame) for _, message_id, frame in reversed(entries[-limit:] if limit else [])]

    async def history_after(
        self, room_id: str, after: str, limit: int, max_age_ms: int
    ) -> tuple[list[tuple[str, bytes]], bool]:
        entries = self._history_live(room_id, max_age_ms)
        ids = [message_id for _, message_id, _ in entries]
        found = after in ids
        start = ids.index(after) + 1 if found else 0
        return [(message_id, frame) for _, message_id, frame in entries[start : start + limit]], found

    async def history_clear(self, room_id: str) -> None:
        self._history.pop(room_id, None)

    # --- presence ----------------------------------------------------------------------------
    async def presence_add(
        self, room_id: str, connection_id: str, holder: str, user_id: str, attributes: dict[str, str] | None
    ) -> bool:
        entries = self._presence[room_id]
        if connection_id in entries:
            return False
        entries[connection_id] = (holder, user_id, dict(attributes or {}))
        self._presence_held[holder].add((room_id, connection_id))
        key = (room_id, user_id)
        self._presence_counts[key] = self._presence_counts.get(key, 0) + 1
        return self._presence_counts[key] == 1

    def _presence_drop(self, room_id: str, connection_id: str) -> tuple[str, dict[str, str]] | None:
        """Remove one entry; (user, attributes) if it was the user's last in the room."""
        entries = self._presence.get(room_id)
        entry = entries.pop(connection_id, None) if entries is not None else None
        if entry is None:
            return None
        if not entries:
            del self._presence[room_id]
        holder, user_id, attributes = entry
        self._presence_held[holder].discard((room_id, connection_id))
        key = (room_id, user_id)
        self._presence_counts[key] -= 1
        if self._presence_counts[key] > 0:
            return None
        del self._presence_counts[key]
        return user_id, attributes

    async def presence_remove(self, room_id: str, connection_id: str) -> bool:
        return self._presence_drop(room_id, connection_id) is not None

    async def presence_refresh(self, holder: str, ttl_ms: int) -> bool:
        known = holder in self._presence_deadlines
        if ttl_ms > 0:
            self._presence_deadlines[holder] = _monotonic_ms() + ttl_ms
        else:
            self._presence_deadlines.pop(holder, None)
        return known

    async def presence_list(self, room_id: str) -> list[tuple[str, str, dict[str, str]]]:
        now = _monotonic_ms()
        return [
            (connection_id, user_id, dict(attributes))
            for connection_id, (holder, user_id, attributes) in self._presence.get(room_id, {}).items()
            if self._presence_deadlines.get(holder, 0) > now
        ]

    async def presence_sweep(self) -> list[tuple[str, str, dict[str, str]]]:
        now = _monotonic_ms()
        left: list[tuple[str, str, dict[str, str]]] = []
        for holder in [h for h, deadline in self._presence_deadlines.items() if deadline <= now]:
            del self._presence_deadlines[holder]
            for room_id, connection_id in sorted(self._presence_held.pop(holder, set())):
                gone = self._presence_drop(room_id, connection_id)
                if gone is not None:
                    left.append((room_id, gone[0], gone[1]))
        return left

    # --- members -----------------------------------------------------------------------------
    async def members_add(self, room_id: str, user_ids: list[str]) -> list[str]:
        members = self._members[room_id]
        added = []
        for user_id in user_ids:
            if user_id not in members:
                members.add(user_id)
                added.append(user_id)
        return added

    async def members_remove(self, room_id: str, user_ids: list[str]) -> list[str]:
        members = self._members.get(room_id, set())
        removed = []
        for user_id in user_ids:
            if user_id in members:
                members.discard(user_id)
                removed.append(user_id)
        if not members:
            self._members.pop(room_id, None)
        return removed

    async def members_check(self, room_id: str, user_ids: list[str]) -> list[bool]:
        members = self._members.get(room_id, set())
        return [user_id in members for user_id in user_ids]

    async def members_page(self, room_id: str, after: str | None, limit: int) -> list[str]:
        ordered = sorted(self._members.get(room_id, set()), key=lambda user_id: user_id.encode())
        if after is not None:
            ordered = [user_id for user_id in ordered if user_id.encode() > after.encode()]
        return ordered[: max(limit, 0)]

    async def members_clear(self, room_id: str) -> None:
        self._members.pop(room_id, None)

    async def hit(self, key: str, window_ms: int) -> int:
        window = int(time.time() * 1000) // window_ms
        slot = (key, window)
        count = self._windows.get(slot, 0) + 1
        self._windows[slot] = count
        if len(self._windows) > 10_000:
            self._windows = {k: v for k, v in self._windows.items() if k[1] >= window - 1}
        return count

    async def report(self, group: str, member: str, value: int, ttl_ms: int) -> None:
        self._reports[group][member] = (value, _monotonic_ms() + ttl_ms)

    async def reports(self, group: str) -> dict[str, int]:
        now = _monotonic_ms()
        return {m: value for m, (value, expiry) in self._reports[group].items() if expiry > now}

    def _live_values(self, group: str) -> dict[str, tuple[int, int]]:
        """``group``'s live members (the dead ones forgotten, as Redis forgets them)."""
        now = _monotonic_ms()
        live = {m: entry for m, entry in self._reports[group].items() if entry[1] > now}
        self._reports[group] = live
        return live

    def reserve(self, group: str, member: str, limit: int, ttl_ms: int) -> Awaitable[bool]:
        # applied now, not when awaited: "ordered at call time" like RedisStore's pipeline
        live = self._live_values(group)
        if sum(value for value, _ in live.values()) >= limit:
            return _ready(False)
        live[member] = (live.get(member, (0, 0))[0] + 1, _monotonic_ms() + ttl_ms)
        return _ready(True)

    def unreserve(self, group: str, member: str) -> Awaitable[None]:
        live = self._live_values(group)
        if member in live:
            value, deadline = live[member]
            live[member] = (max(value - 1, 0), deadline)
        return _ready(None)
