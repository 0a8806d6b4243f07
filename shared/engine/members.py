"""``Members`` (a parley extension): the member list of each members-only room.

The control plane manages it (:class:`Members`); the data plane only asks who is a member
(:class:`MemberCheck`) and, in rooms that keep messages per member, lists them (:class:`MemberList`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol


class MemberCheck(Protocol):
    """The read every component may do."""

    @abstractmethod
    async def check(self, room_id: str, user_ids: list[str]) -> list[bool]: ...


class MemberList(MemberCheck, Protocol):
    """Reads: who is a member, and the member list (a router keeping messages per member)."""

    @abstractmethod
    async def page(self, room_id: str, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` members in ascending UTF-8 byte order, strictly after ``after``."""


class Members(MemberList, ABC):
    """Every operation on member lists (the control plane's)."""

    @abstractmethod
    async def add(self, room_id: str, user_ids: list[str]) -> list[str]:
        """Add members; return those that were not members yet, in the given order."""

    @abstractmethod
    async def remove(self, room_id: str, user_ids: list[str]) -> list[str]:
        """Remove members; return those that were members, in the given order."""

    @abstractmethod
    async def clear(self, room_id: str) -> None: ...
