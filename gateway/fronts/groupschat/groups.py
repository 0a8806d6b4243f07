"""groups-chat groups and sessions on parley's core: a group IS a members-only parley room.

A group is a parley room named ``groupschat:<name>`` (tag ``groupschat:group``), members-only, so
ListRooms shows it and the router refuses non-members (a user who left cannot post), and
``member_log``, so the router keeps every message sent into it, by any protocol, in each other
member's event log; its id is the parley room id; its members are the room's members. Each
user's groups are an index kept as a member set (``groupschat-user:<user id>``). Group events
(70 created, 72 joined, 73 left) are appended to every member's event log, then a
``members_changed`` control notice makes every front replica refresh its subscriptions and send
the new events to its connected members; the changes are also announced to IVS clients as
``parley:MEMBER_*`` events.

Sessions: ``POST /sessions`` stores the messaging-url key (``RecordKind.GROUPSCHAT_SESSION``, with
its expiry) in the Store so any replica accepts the URL; one live session per user (a new one
replaces the old, and a ``session_replaced`` notice closes the old device's
connection wherever it is). Owns these effects; must not speak HTTP (``rest``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from shared.clock import now_ms
from shared.config import Settings
from shared.engine.actions import Actions
from shared.engine.counters import Counters
from shared.engine.fanout import Fanout
from shared.engine.marks import Marks
from shared.engine.members import Members
from shared.engine.records import QuotaExceeded, RecordKind
from shared.features import membership
from shared.protocol.envelope import ControlNotice, ControlTopic
from shared.protocol.ids import new_id, room_arn
from shared.protocol.models import DEFAULT_FALLBACK_RESULT, Room

from . import codec
from .events import EventLog, EventStore

GROUP_TAG = "groupschat:group"
MAX_SESSIONS = 1 << 40


class GroupStore(EventStore, Protocol):
    @property
    def members(self) -> Members: ...

    @property
    def marks(self) -> Marks: ...

    @property
    def counters(self) -> Counters: ...


class GroupBus(Protocol):
    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...


class GroupError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True, frozen=True)
class Session:
    session_id: str
    user_id: str
    key: str  # the messaging_url's path
    created_ms: int


def user_index(user_id: str) -> str:
    return f"groupschat-user:{user_id}"


class Groups:
    def __init__(self, settings: Settings, store: GroupStore, bus: GroupBus) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.log = EventLog(settings, store)

    # --- groups -------------------------------------------------------------------------------
    async def is_group(self, group_id: str) -> bool:
        if not 0 < len(group_id) <= codec.MAX_ID_LENGTH:
            return False
        record = await self.store.records.get(RecordKind.ROOM, group_id)
        return record is not None and GROUP_TAG in record.get("tags", {})

    async def groups_of(self, user_id: str) -> list[str]:
        return await self.store.members.page(user_index(user_id), None, self.settings.groupschat_max_groups_per_user)

    async def members(self, group_id: str) -> list[str]:
        return await self.store.members.page(group_id, None, self.settings.groupschat_max_group_members)

    async def create(self, creator: str, body: codec.CreateGroup) -> str:
        users = list(dict.fromkeys([*body.user_ids, creator]))
        if len(users) > self.settings.groupschat_max_group_members:
            raise GroupError(400, f"A group has at most {self.settings.groupschat_max_group_members} members")
        for user in users:
            if user != creator and await self.store.records.get(RecordKind.ACCOUNT_ID, user) is None:
                raise GroupError(400, f"Unknown user id {user[:64]}")
        now = now_ms()
        group_id = new_id()
        room = Room(
            id=group_id,
            arn=room_arn(self.settings.region, self.settings.account_id, group_id),
            name=f"groupschat:{body.name}"[:128],
            create_ms=now,
            update_ms=now,
            review_fallback=DEFAULT_FALLBACK_RESULT,
            tags={GROUP_TAG: "1"},
            members_only=True,
            member_log=True,
        )
        try:
            await self.store.records.create(RecordKind.ROOM, group_id, room.to_record(), now, self.settings.max_rooms)
        except QuotaExceeded:
            raise GroupError(503, "The room quota is reached") from None
        await self._add(group_id, users)
        created = codec.encode(
            codec.Event.GROUP_CREATED, now, {"group_id": group_id, "name": body.name, "user_ids": users}
        )
        await self.log.append(users, new_id(), created, group_id)
        await self._announce(group_id, users, membership.EVENT_MEMBER_ADDED)
        return group_id

    async def join(self, caller: str, group_id: str, user_id: str) -> None:
        """Anyone who knows the group id may join it (the seed's user rejoins after leaving);
        a member may add another user."""
        if not await self.is_group(group_id):
            raise GroupError(404, "Group not found")
        if user_id != caller and not await membership.is_member(self.store.members, group_id, caller):
            raise GroupError(403, "Only a member may add another user")
        if user_id != caller and await self.store.records.get(RecordKind.ACCOUNT_ID, user_id) is None:
            raise GroupError(400, "Unknown user id")
        if len(await self.members(group_id)) >= self.settings.groupschat_max_group_members:
            raise GroupError(400, f"A group has at most {self.settings.groupschat_max_group_members} members")
        if not await self._add(group_id, [user_id]):
            return  # already a member: nothing happens
        event = {"group_id": group_id, "user_id": user_id}
        await self.log.append(
            await self.members(group_id), new_id(), codec.encode(codec.Event.USER_JOINED, now_ms(), event), group_id
        )
        await self._announce(group_id, [user_id], membership.EVENT_MEMBER_ADDED)

    async def leave(self, caller: str, group_id: str, user_id: str) -> None:
        """A member leaves; every member, the leaver included, gets 73. Only oneself can be made to
        leave (``user_id`` is the caller's, as in the seed's example)."""
        if not await self.is_group(group_id):
            raise GroupError(404, "Group not found")
        if user_id != caller:
            raise GroupError(403, "A user can only leave a group themselves")
        if not await membership.is_member(self.store.members, group_id, caller):
            raise GroupError(403, "You are not a member of this group")
        audience = await self.members(group_id)
        if user_id not in audience:
            raise GroupError(404, "The user is not a member of this group")
        await self.store.members.remove(group_id, [user_id])
        await self.store.members.remove(user_index(user_id), [group_id])
        event = {"group_id": group_id, "user_id": user_id}
        await self.log.append(audience, new_id(), codec.encode(codec.Event.USER_LEFT, now_ms(), event), group_id)
        await self._announce(group_id, [user_id], membership.EVENT_MEMBER_REMOVED)

    async def _add(self, group_id: str, users: list[str]) -> list[str]:
        limit = self.settings.groupschat_max_groups_per_user
        for user in users:
            if len(await self.groups_of(user)) >= limit:
                raise GroupError(400, f"A user is in at most {limit} groups")
        added = await self.store.members.add(group_id, users)
        for user in added:
            await self.store.members.add(user_index(user), [group_id])
        return added

    async def _announce(self, group_id: str, users: list[str], event_name: str) -> None:
        await self.bus.fanout.publish_control(ControlNotice(ControlTopic.MEMBERS_CHANGED, group_id).encode())
        for user in users:
            await self.bus.actions.publish(membership.membership_action(group_id, event_name, user))

    # --- sessions -----------------------------------------------------------------------------
    async def open_session(self, user_id: str) -> Session:
        now = now_ms()
        session = Session(str(uuid.uuid4()), user_id, str(uuid.uuid4()), now)
        previous = await self.store.records.get(RecordKind.GROUPSCHAT_USER_SESSION, user_id)
        if previous is not None:  # single device session per user: the old URL stops working
            await self.store.records.delete(RecordKind.GROUPSCHAT_SESSION, previous["key"])
        expires = now + self.settings.groupschat_session_ttl_seconds * 1000
        record = {"user_id": user_id, "session_id": session.session_id, "created_ms": now, "expires_ms": expires}
        await self.store.records.create(RecordKind.GROUPSCHAT_SESSION, session.key, record, now, MAX_SESSIONS)
        await self.store.records.create(
            RecordKind.GROUPSCHAT_USER_SESSION, user_id, {"key": session.key}, now, MAX_SESSIONS
        )
        if previous is not None:  # the old device's connection, on whichever replica, is closed
            await self.bus.fanout.publish_control(ControlNotice(ControlTopic.SESSION_REPLACED, user_id).encode())
        return session

    async def current_key(self, user_id: str) -> str | None:
        record = await self.store.records.get(RecordKind.GROUPSCHAT_USER_SESSION, user_id)
        return None if record is None else str(record["key"])

    async def session(self, key: str) -> Session | None:
        """The live session behind a messaging-url key; None if unknown, replaced or expired."""
        try:
            uuid.UUID(key)
        except ValueError:
            return None
        record = await self.store.records.get(RecordKind.GROUPSCHAT_SESSION, key)
        if record is None:
            return None
        if record["expires_ms"] <= now_ms():
            await self.store.records.delete(RecordKind.GROUPSCHAT_SESSION, key)
            return None
        return Session(record["session_id"], record["user_id"], key, record["created_ms"])
