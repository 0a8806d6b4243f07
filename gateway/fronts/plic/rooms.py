"""Plic rooms on parley's core: a plic room IS a parley room, not a second store.

A plic room is a members-only parley room named ``plic:<int id>`` (tag ``plic:room``), so ListRooms
shows it and the router refuses non-members. Its int id comes from an atomic counter and an alias
record (``RecordKind.PLIC_ROOM``: int id → parley room id, owner, apartment, creation time); its
participants are the room's members; its messages are the room's history. Each user's rooms are
an index kept as a member set (``plic-user:<user id>`` → int ids), so ``GET /rooms`` and a
connect read one set instead of scanning rooms.

Member changes are published like AddRoomMembers / RemoveRoomMembers (``members_changed`` control
notice, ``parley:MEMBER_*`` events through the room's shard). Owns the REST operations' effects;
must not speak HTTP (``rest``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from shared.clock import now_ms
from shared.config import Settings
from shared.engine.actions import Actions
from shared.engine.counters import Counters
from shared.engine.fanout import Fanout
from shared.engine.history import History
from shared.engine.members import Members
from shared.engine.records import QuotaExceeded, RecordKind, Records
from shared.features import membership
from shared.protocol.envelope import ControlNotice, ControlTopic
from shared.protocol.ids import new_id, room_arn
from shared.protocol.models import DEFAULT_FALLBACK_RESULT, DEFAULT_HISTORY_MAX_AGE_SECONDS, Room
from shared.protocol.timestamps import iso_ms

from . import codec

ROOM_TAG = "plic:room"
SEQUENCE_KEY = "plic:room-sequence"
# Counters.hit counts per fixed window: one window of 2^42 ms (≈139 years from the epoch) makes it
# a plain atomic sequence until the year 2109.
SEQUENCE_WINDOW_MS = 1 << 42
MAX_ALIASES = 1 << 40


class PlicStore(Protocol):
    @property
    def records(self) -> Records: ...

    @property
    def members(self) -> Members: ...

    @property
    def history(self) -> History: ...

    @property
    def counters(self) -> Counters: ...


class PlicBus(Protocol):
    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...


class RoomError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True, frozen=True)
class Alias:
    room_id: int
    parley_id: str
    owner_id: str
    apartment_id: int | None
    created_ms: int


def user_index(user_id: str) -> str:
    return f"plic-user:{user_id}"


def room_name(room_id: int) -> str:
    return f"plic:{room_id}"


class PlicRooms:
    def __init__(self, settings: Settings, store: PlicStore, bus: PlicBus) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus

    # --- reads --------------------------------------------------------------------------------
    async def alias(self, room_id: int) -> Alias | None:
        record = await self.store.records.get(RecordKind.PLIC_ROOM, str(room_id))
        if record is None:
            return None
        return Alias(room_id, record["room_id"], record["owner_id"], record["apartment_id"], record["created_ms"])

    async def rooms_of(self, user_id: str) -> list[int]:
        rows = await self.store.members.page(user_index(user_id), None, self.settings.plic_max_rooms_per_user)
        return sorted(int(row) for row in rows)

    async def participants(self, alias: Alias) -> list[str]:
        return await self.store.members.page(alias.parley_id, None, self.settings.plic_max_participants)

    async def _participant_alias(self, room_id: int, user_id: str, *, owner: bool = False) -> Alias:
        alias = await self.alias(room_id)
        if alias is None:
            raise RoomError(404, f"Room {room_id} not found")
        if owner and alias.owner_id != user_id:
            raise RoomError(403, "Only the room's owner may do this")
        if not owner and not await membership.is_member(self.store.members, alias.parley_id, user_id):
            raise RoomError(403, "You are not a participant of this room")
        return alias

    async def _messages(self, alias: Alias, limit: int) -> list[dict[str, Any]]:
        rows = await self.store.history.latest(alias.parley_id, limit, _history_age_ms(alias))
        found = []
        for _, frame in reversed(rows):  # oldest first
            message = codec.ivs_message(frame)
            if message is not None:
                found.append(
                    {
                        "id": message.message_id,
                        "room_id": alias.room_id,
                        "message": message.content,
                        "sender_id": message.sender_id,
                        "created_at": message.send_time,
                    }
                )
        return found

    async def list_for(self, user_id: str) -> list[dict[str, Any]]:
        async def one(room_id: int) -> dict[str, Any] | None:
            alias = await self.alias(room_id)
            if alias is None:
                return None
            participants, last = await asyncio.gather(self.participants(alias), self._messages(alias, 1))
            return {
                "room_id": room_id,
                "participants_id": participants,
                "apartment_id": alias.apartment_id,
                "is_owner": alias.owner_id == user_id,
                "last_message": _last(last),
            }

        found = await asyncio.gather(*(one(room_id) for room_id in await self.rooms_of(user_id)))
        return [room for room in found if room is not None]

    async def info(self, room_id: int, user_id: str) -> dict[str, Any]:
        alias = await self._participant_alias(room_id, user_id)
        participants, messages = await asyncio.gather(self.participants(alias), self._messages(alias, 1000))
        return {
            "apartment_id": alias.apartment_id,
            "created_at": iso_ms(alias.created_ms),
            "messages": messages,
            "owner_id": alias.owner_id,
            "participants_id": participants,
            "room_id": room_id,
        }

    # --- writes -------------------------------------------------------------------------------
    async def create(self, owner_id: str, body: codec.CreateRoom) -> int:
        users = list(dict.fromkeys([owner_id, *body.users]))
        if len(users) > self.settings.plic_max_participants:
            raise RoomError(400, f"A room has at most {self.settings.plic_max_participants} participants")
        if len(await self.rooms_of(owner_id)) >= self.settings.plic_max_rooms_per_user:
            raise RoomError(400, f"A user takes part in at most {self.settings.plic_max_rooms_per_user} rooms")
        room_id = await self.store.counters.hit(SEQUENCE_KEY, SEQUENCE_WINDOW_MS)
        now = now_ms()
        parley_id = new_id()
        room = Room(
            id=parley_id,
            arn=room_arn(self.settings.region, self.settings.account_id, parley_id),
            name=room_name(room_id),
            create_ms=now,
            update_ms=now,
            review_fallback=DEFAULT_FALLBACK_RESULT,
            tags={ROOM_TAG: str(room_id)},
            members_only=True,
        )
        try:
            await self.store.records.create(RecordKind.ROOM, parley_id, room.to_record(), now, self.settings.max_rooms)
        except QuotaExceeded:
            raise RoomError(503, "The room quota is reached") from None
        alias = {"room_id": parley_id, "owner_id": owner_id, "apartment_id": body.apartment_id, "created_ms": now}
        await self.store.records.create(RecordKind.PLIC_ROOM, str(room_id), alias, now, MAX_ALIASES)
        await self._add(Alias(room_id, parley_id, owner_id, body.apartment_id, now), users)
        return room_id

    async def update(self, user_id: str, body: codec.UpdateRoom) -> None:
        alias = await self._participant_alias(body.room_id, user_id, owner=True)
        if alias.owner_id in body.users_to_remove:
            raise RoomError(400, "The owner cannot be removed; delete the room instead")
        current = await self.participants(alias)
        adding = [user for user in body.users_to_add if user not in current]
        if len(current) + len(adding) > self.settings.plic_max_participants:
            raise RoomError(400, f"A room has at most {self.settings.plic_max_participants} participants")
        await self._add(alias, adding)
        await self._remove(alias, body.users_to_remove)

    async def delete(self, room_id: int, user_id: str) -> None:
        alias = await self._participant_alias(room_id, user_id, owner=True)
        participants = await self.participants(alias)
        await self.store.records.delete(RecordKind.PLIC_ROOM, str(room_id))
        await self.store.records.delete(RecordKind.ROOM, alias.parley_id)
        await self.store.history.clear(alias.parley_id)
        await self.store.members.clear(alias.parley_id)
        for user in participants:
            await self.store.members.remove(user_index(user), [str(room_id)])
        await self._notify(ControlTopic.ROOM_CHANGED, alias.parley_id)
        await self._notify(ControlTopic.MEMBERS_CHANGED, alias.parley_id)

    async def _add(self, alias: Alias, users: list[str]) -> None:
        added = await self.store.members.add(alias.parley_id, users)
        for user in added:
            await self.store.members.add(user_index(user), [str(alias.room_id)])
        await self._announce(alias, added, membership.EVENT_MEMBER_ADDED)

    async def _remove(self, alias: Alias, users: list[str]) -> None:
        removed = await self.store.members.remove(alias.parley_id, users)
        for user in removed:
            await self.store.members.remove(user_index(user), [str(alias.room_id)])
        await self._announce(alias, removed, membership.EVENT_MEMBER_REMOVED)

    async def _announce(self, alias: Alias, users: list[str], event_name: str) -> None:
        if not users:
            return
        await self._notify(ControlTopic.MEMBERS_CHANGED, alias.parley_id)
        for user in users:
            await self.bus.actions.publish(membership.membership_action(alias.parley_id, event_name, user))

    async def _notify(self, topic: ControlTopic, subject: str) -> None:
        await self.bus.fanout.publish_control(ControlNotice(topic, subject).encode())


def _history_age_ms(alias: Alias) -> int:
    return DEFAULT_HISTORY_MAX_AGE_SECONDS * 1000


def _last(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not messages:
        return None
    last = messages[-1]
    return {k: last[k] for k in ("room_id", "message", "sender_id", "created_at")}
