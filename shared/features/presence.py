"""Presence (a parley extension): who is connected to a room now, across every gateway.

Each gateway process records its connections in the Store (``shared.engine.presence``) under a
*holder* id unique to this process incarnation, and refreshes the holder's deadline with its
heartbeat (every second; ``PARLEY_PRESENCE_TTL_SECONDS``, default 10 s). A gateway that dies
stops refreshing: its connections disappear from every presence read as soon as the deadline
passes, and the next sweep (run by routers, see ``router/presence.py``) removes them and emits
``parley:USER_LEFT`` for each user who had no other connection in the room.

Events (rooms with ``presenceEvents`` on): ``parley:USER_JOINED`` for a user's first connection in
the room and ``parley:USER_LEFT`` for the last, over all gateways — the Store decides "first" and
"last" atomically, so each is emitted once. They travel as ``Kind.PRESENCE`` actions through the
room's shard, so they are ordered with the room's messages.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from shared.clock import now_ms
from shared.engine.records import RecordKind, RecordReader
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.ids import new_id
from shared.protocol.models import Room

EVENT_USER_JOINED = "parley:USER_JOINED"
EVENT_USER_LEFT = "parley:USER_LEFT"


def event_attributes(user_id: str, attributes: dict[str, str] | None) -> dict[str, str]:
    """The event's Attributes: the user's token attributes plus ``UserId`` (which wins)."""
    return {**(attributes or {}), "UserId": user_id}


def presence_action(room_id: str, event_name: str, user_id: str, attributes: dict[str, str] | None) -> ActionEnvelope:
    # No gateway_id: nobody is answered with an ERROR for a presence event.
    return ActionEnvelope(
        kind=Kind.PRESENCE,
        frame_id=new_id(),
        room_id=room_id,
        received_ms=now_ms(),
        user_id=user_id,
        user_attributes=attributes,
        event_name=event_name,
    )


async def events_enabled(records: RecordReader, room_id: str) -> bool:
    record = await records.get(RecordKind.ROOM, room_id)
    return record is not None and bool(record.get("presence_events"))


def room_presence_events(room: Room | None) -> bool:
    return room is not None and room.presence_events


def group_users(rows: list[tuple[str, str, dict[str, str]]]) -> tuple[list[dict[str, Any]], int]:
    """Live connections → users (sorted by UTF-8 bytes of the user id) with their connection
    counts, and the total connection count. A user's attributes are those of one of their
    connections (the newest token's, in practice they are the same)."""
    users: dict[str, dict[str, Any]] = {}
    for _, user_id, attributes in rows:
        entry = users.get(user_id)
        if entry is None:
            users[user_id] = {"userId": user_id, "attributes": attributes, "connections": 1}
        else:
            entry["connections"] += 1
    ordered = sorted(users.values(), key=lambda user: user["userId"].encode())
    return ordered, len(rows)


def page_after(users: list[dict[str, Any]], after: str | None, limit: int) -> tuple[list[dict[str, Any]], str]:
    """Users strictly after ``after``, at most ``limit``; and the cursor of the next page ("")."""
    if after is not None:
        key = after.encode()
        users = [user for user in users if user["userId"].encode() > key]
    page = users[:limit]
    return page, page[-1]["userId"] if len(users) > limit else ""


def encode_token(user_id: str) -> str:
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")


def decode_token(token: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
