"""GetRoomPresence (a parley extension, ``parleychat`` model): who is connected to a room now.

Reads the presence every gateway keeps in the Store (``shared/features/presence.py``): users in user-id
order with their token attributes and connection counts, and the room's total connection count.
Connections of a gateway that stopped heartbeating are not listed (see the README, "Presence").
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, load_room, member
from api.errors import ValidationException
from shared.features import presence

DEFAULT_PAGE = 50


def user_cursor(params: dict[str, Any]) -> str | None:
    """The UserId a page starts after, from ``nextToken`` (None on the first page)."""
    token = member(params, "nextToken") or None
    if token is None:
        return None
    after = presence.decode_token(token)
    if after is None:
        raise ValidationException.field("nextToken", "The pagination token is invalid")
    return after


async def get_room_presence(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    limit = member(params, "maxResults", DEFAULT_PAGE)
    after = user_cursor(params)
    users, connection_count = presence.group_users(await ctx.store.presence.list(room.id))
    page, next_after = presence.page_after(users, after, limit)
    result: dict[str, Any] = {"users": page, "connectionCount": connection_count}
    if next_after:
        result["nextToken"] = presence.encode_token(next_after)
    return result
