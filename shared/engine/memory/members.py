"""In-process :class:`~shared.engine.members.Members`."""

from __future__ import annotations

from collections import defaultdict

from shared.engine.members import Members


class MemoryMembers(Members):
    def __init__(self) -> None:
        self._members: dict[str, set[str]] = defaultdict(set)

    async def add(self, room_id: str, user_ids: list[str]) -> list[str]:
        members = self._members[room_id]
        added = []
        for user_id in user_ids:
            if user_id not in members:
                members.add(user_id)
                added.append(user_id)
        return added

    async def remove(self, room_id: str, user_ids: list[str]) -> list[str]:
        members = self._members.get(room_id, set())
        removed = []
        for user_id in user_ids:
            if user_id in members:
                members.discard(user_id)
                removed.append(user_id)
        if not members:
            self._members.pop(room_id, None)
        return removed

    async def check(self, room_id: str, user_ids: list[str]) -> list[bool]:
        members = self._members.get(room_id, set())
        return [user_id in members for user_id in user_ids]

    async def page(self, room_id: str, after: str | None, limit: int) -> list[str]:
        ordered = sorted(self._members.get(room_id, set()), key=lambda user_id: user_id.encode())
        if after is not None:
            ordered = [user_id for user_id in ordered if user_id.encode() > after.encode()]
        return ordered[: max(limit, 0)]

    async def clear(self, room_id: str) -> None:
        self._members.pop(room_id, None)
