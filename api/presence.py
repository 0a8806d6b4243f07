"""GetRoomPresence (a parley extension, ``parleychat`` model): who is connected to a room now.

Reads the presence every gateway keeps in the Store (``shared/presence.py``): users in user-id
order with their token attributes and connection counts, and the room's total connection count.
Connections of a gateway that stopped heartbeating are not listed (see the README, "Presence").
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, load_room, member
from api.errors import ValidationException
from shared import presence

DEFAULT_PAGE = 50


async def get_room_presence(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    limit = member(params, "maxResults", DEFAULT_PAGE)
    token = member(params, "nextToken") or None
    after = None
    if token is not None:
        after = presence.decode_token(token)
        if after is None:
            raise ValidationException.field("nextToken", "The pagination token is invalid")
    users, connection_count = presence.group_users(await ctx.store.presence_list(room.id))
    page, next_after = presence.page_after(users, after, limit)
    result: dict[str, Any] = {"users": page, "connectionCount": connection_count}
    if next_after:
        result["nextToken"] = presence.encode_token(next_after)
    return result
