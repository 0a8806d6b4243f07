"""Messages kept per user for offline delivery (parley extensions), written by the router as it
delivers: two room flags, one planner.

- ``Room.inbox_per_user`` (seed 000's ``inbox``): each direct message is kept for its recipient in
  the room's inbox for that user (``inbox_key``), bounded like the room's history; the reader
  *takes* it (``take``: read, then remove each message, keeping only those this caller removed,
  so two replicas taking the same inbox at once never both return a message).
- ``Room.member_log`` (seed 003's "events not yet received"): each message is kept for every
  member it is for but its sender (a direct message: its recipient) in that user's one log over
  every room (``user_log_key``), bounded by :class:`LogBounds`; entries are tagged with their
  room (``log_entry``), so a front may append its own events about a room to the same log and
  the reader keeps its own delivered-up-to cursor (nothing is removed on read). A deleted
  message leaves every member's log, as it leaves the room's history.

Owns: the keys, the user-log entry shape, and ``plan``: the writes a decided batch makes, in
order. Must not: decide what is delivered (the router does) or how a front reads its users' logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from shared.config import Settings
from shared.engine.history import History
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.models import Room

_TAG = b"\n"  # room id, then the payload; room ids never hold a newline


def inbox_key(room_id: str, user_id: str) -> str:
    """The History key holding ``user_id``'s direct messages in ``room_id``."""
    return f"{room_id}:inbox:{user_id}"


def user_log_key(user_id: str) -> str:
    """The History key of ``user_id``'s one log over every ``member_log`` room."""
    return f"user-log:{user_id}"


def log_entry(room_id: str, payload: bytes) -> bytes:
    """A user-log entry: ``payload`` (an IVS frame delivered in the room, or a front's own event
    about it) tagged with its room."""
    return room_id.encode() + _TAG + payload


def read_log_entry(raw: bytes) -> tuple[str, bytes]:
    """(room id, payload) of a user-log entry; an untagged entry has room ``""``."""
    room, tag, payload = raw.partition(_TAG)
    return (room.decode(), payload) if tag else ("", raw)


@dataclass(slots=True, frozen=True)
class LogBounds:
    """The user logs' bounds, the same for every writer of a key (History trims on append)."""

    max_events: int
    max_age_ms: int
    max_members: int  # a message is kept for at most this many members (the first, by id)


def log_bounds(settings: Settings) -> LogBounds:
    """Named for their one reader, seed 003's groupschat front."""
    return LogBounds(
        settings.groupschat_events_max,
        settings.groupschat_events_max_age_seconds * 1000,
        settings.groupschat_max_group_members,
    )


@dataclass(slots=True)
class Append:
    key: str
    items: list[tuple[str, bytes]]
    max_messages: int
    max_age_ms: int


@dataclass(slots=True, frozen=True)
class Remove:
    key: str
    message_id: str


Write = Append | Remove


class _Writes:
    """Ordered writes: the appends to one key between two removals become one append (each key's
    items keep their order; different keys are independent)."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self._appends: dict[str, Append] = {}

    def append(self, key: str, item: tuple[str, bytes], max_messages: int, max_age_ms: int) -> None:
        pending = self._appends.get(key)
        if pending is None:
            pending = self._appends[key] = Append(key, [], max_messages, max_age_ms)
        pending.items.append(item)

    def remove(self, keys: Iterable[str], message_id: str) -> None:
        self.done()
        self.writes += [Remove(key, message_id) for key in keys]

    def done(self) -> list[Write]:
        self.writes += self._appends.values()
        self._appends = {}
        return self.writes


def needs_members(room: Room, actions: Iterable[ActionEnvelope]) -> bool:
    """Whether ``plan`` needs the room's members for these delivered actions."""
    return room.member_log and any(action.kind in (Kind.SEND_MESSAGE, Kind.DELETE_MESSAGE) for action in actions)


def plan(
    room: Room, delivered: Iterable[tuple[ActionEnvelope, bytes]], members: list[str], bounds: LogBounds
) -> list[Write]:
    """The per-user writes of a batch's delivered actions (with the frames delivered), in order.
    ``members`` matters only for ``member_log`` rooms."""
    writes = _Writes()
    inbox_on = room.inbox_per_user and room.history_max_messages > 0
    inbox_age_ms = room.history_max_age_seconds * 1000
    audience = members[: bounds.max_members]
    for action, frame in delivered:
        if action.kind == Kind.SEND_MESSAGE:
            if inbox_on and action.recipient:
                key = inbox_key(room.id, action.recipient)
                writes.append(key, (action.frame_id, frame), room.history_max_messages, inbox_age_ms)
            if room.member_log:
                entry = (action.frame_id, log_entry(room.id, frame))
                for user in _receivers(action, audience):
                    writes.append(user_log_key(user), entry, bounds.max_events, bounds.max_age_ms)
        elif action.kind == Kind.DELETE_MESSAGE and room.member_log:
            writes.remove((user_log_key(user) for user in audience), action.message_id)
    return writes.done()


def _receivers(action: ActionEnvelope, members: list[str]) -> list[str]:
    if action.recipient:
        return [action.recipient] if action.recipient != action.user_id and action.recipient in members else []
    return [user for user in members if user != action.user_id]


async def take(history: History, room_id: str, user_id: str, limit: int, max_age_ms: int) -> list[tuple[str, bytes]]:
    """The user's kept messages, oldest first, removed from the inbox (each returned once)."""
    key = inbox_key(room_id, user_id)
    newest_first = await history.latest(key, limit, max_age_ms)
    if not newest_first:
        return []
    oldest_first = newest_first[::-1]
    removals = [history.remove(key, message_id) for message_id, _ in oldest_first]
    removed = await asyncio.gather(*removals)
    return [item for item, mine in zip(oldest_first, removed, strict=True) if mine]
