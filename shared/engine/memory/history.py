"""In-process :class:`~shared.engine.history.History`: a list per room, aged by the wall clock
(the age is the message's, as every process sees it)."""

from __future__ import annotations

from shared.clock import now_ms
from shared.engine.history import History


class MemoryHistory(History):
    def __init__(self) -> None:
        self._history: dict[str, list[tuple[int, str, bytes]]] = {}  # (appended at ms, id, frame)

    def _live(self, room_id: str, max_age_ms: int) -> list[tuple[int, str, bytes]]:
        horizon = now_ms() - max_age_ms
        entries = [entry for entry in self._history.get(room_id, ()) if entry[0] > horizon]
        if entries:
            self._history[room_id] = entries
        else:
            self._history.pop(room_id, None)
        return entries

    async def append(self, room_id: str, items: list[tuple[str, bytes]], max_messages: int, max_age_ms: int) -> None:
        now = now_ms()
        entries = self._history.setdefault(room_id, [])
        entries.extend((now, message_id, frame) for message_id, frame in items)
        del entries[: max(len(entries) - max_messages, 0)]
        self._live(room_id, max_age_ms)

    async def remove(self, room_id: str, message_id: str) -> bool:
        entries = self._history.get(room_id, [])
        kept = [entry for entry in entries if entry[1] != message_id]
        self._history[room_id] = kept
        return len(kept) != len(entries)

    async def latest(
        self, room_id: str, limit: int, max_age_ms: int, before: str | None = None
    ) -> list[tuple[str, bytes]]:
        entries = self._live(room_id, max_age_ms)
        if before is not None:
            ids = [message_id for _, message_id, _ in entries]
            entries = entries[: ids.index(before)] if before in ids else []
        return [(message_id, frame) for _, message_id, frame in reversed(entries[-limit:] if limit else [])]

    async def after(
        self, room_id: str, after: str, limit: int, max_age_ms: int
    ) -> tuple[list[tuple[str, bytes]], bool]:
        entries = self._live(room_id, max_age_ms)
        ids = [message_id for _, message_id, _ in entries]
        found = after in ids
        start = ids.index(after) + 1 if found else 0
        return [(message_id, frame) for _, message_id, frame in entries[start : start + limit]], found

    async def clear(self, room_id: str) -> None:
        self._history.pop(room_id, None)
