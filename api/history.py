"""Room extensions and history (parley extensions, ``parleychat`` model).

GetRoomExtensions / UpdateRoomExtensions hold a room's parley-only settings (history size and
age), kept on the room record but never in IVS's response shapes. ListRoomMessages and
GetLastMessages read the history the router writes (``shared.engine.history``); a message is shown as
the control plane's ``ChatMessage`` shape, built from the exact frame clients received.
"""

from __future__ import annotations

import json
from typing import Any

from api.context import ApiContext, load_room, member
from api.rooms import publish_room_changed, save_room
from shared.protocol.models import Room

DEFAULT_PAGE = 50


def room_extensions(room: Room) -> dict[str, Any]:
    return {
        "arn": room.arn,
        "historyMaxMessages": room.history_max_messages,
        "historyMaxAgeSeconds": room.history_max_age_seconds,
        "approvalRequired": room.approval_required,
        "presenceEvents": room.presence_events,
        "membersOnly": room.members_only,
    }


def chat_message(frame: bytes) -> dict[str, Any]:
    """A delivered MESSAGE frame as the control plane's ``ChatMessage``."""
    body = json.loads(frame)
    return {
        "id": body["Id"],
        "content": body["Content"],
        "attributes": body.get("Attributes") or {},
        "sendTime": body["SendTime"],
        "sender": {"userId": body["Sender"]["UserId"], "attributes": body["Sender"].get("Attributes") or {}},
    }


async def get_room_extensions(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    return room_extensions(await load_room(ctx, params["identifier"]))


async def update_room_extensions(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["identifier"])
    room.history_max_messages = member(params, "historyMaxMessages", room.history_max_messages)
    room.history_max_age_seconds = member(params, "historyMaxAgeSeconds", room.history_max_age_seconds)
    room.approval_required = member(params, "approvalRequired", room.approval_required)
    room.presence_events = member(params, "presenceEvents", room.presence_events)
    room.members_only = member(params, "membersOnly", room.members_only)
    await save_room(ctx, room)
    if room.history_max_messages == 0:
        await ctx.store.history.clear(room.id)
    await publish_room_changed(ctx, room.id)
    return room_extensions(room)


async def list_room_messages(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    limit = member(params, "maxResults", DEFAULT_PAGE)
    before = member(params, "nextToken") or None
    # One extra row tells whether another page exists.
    rows = await ctx.store.history.latest(room.id, limit + 1, room.history_max_age_seconds * 1000, before)
    result: dict[str, Any] = {"messages": [chat_message(frame) for _, frame in rows[:limit]]}
    if len(rows) > limit:
        result["nextToken"] = rows[limit - 1][0]
    return result


async def get_last_messages(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    last = []
    for arn in params["roomIdentifiers"]:
        room = await load_room(ctx, arn)
        rows = await ctx.store.history.latest(room.id, 1, room.history_max_age_seconds * 1000)
        entry: dict[str, Any] = {"roomArn": room.arn}
        if rows:
            entry["message"] = chat_message(rows[0][1])
        last.append(entry)
    return {"lastMessages": last}
