"""BanUser / UnbanUser (parley extensions, ``parleychat`` model): DisconnectUser that sticks.

BanUser first records the ban, then disconnects the user exactly as DisconnectUser does (an
``aws:DISCONNECT_USER`` event through the room's shard, then close), so a client cannot slip a
reconnect in between.
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, load_room, member
from api.moderation import disconnect_user
from shared.clock import now_ms
from shared.features import bans
from shared.protocol.timestamps import iso_ms


async def ban_user(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    duration_ms = params["durationSeconds"] * 1000
    await bans.ban(ctx.store.marks, room.id, params["userId"], duration_ms)
    await disconnect_user(
        ctx,
        {"roomIdentifier": params["roomIdentifier"], "userId": params["userId"], "reason": member(params, "reason")},
    )
    return {"banExpirationTime": iso_ms(now_ms() + duration_ms)}


async def unban_user(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    return {"banned": await bans.unban(ctx.store.marks, room.id, params["userId"])}
