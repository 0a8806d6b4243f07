"""CreateChatToken: mint a signed, single-use token a gateway admits at the WebSocket handshake."""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, load_room, member
from api.errors import AccessDeniedException
from shared.clock import now_ms
from shared.features import bans, membership
from shared.protocol import tokens
from shared.protocol.timestamps import iso_ms

DEFAULT_SESSION_MINUTES = 60


async def create_chat_token(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    if await bans.is_banned(ctx.store.marks, room.id, params["userId"]):
        raise AccessDeniedException("The user is banned from this room")
    if room.members_only and not await membership.is_member(ctx.store.members, room.id, params["userId"]):
        raise AccessDeniedException(membership.NOT_A_MEMBER)
    token, claims = tokens.mint(
        ctx.settings.token_secret_bytes,  # the first PARLEY_TOKEN_SECRET key; gateways accept every listed one
        room_id=room.id,
        user_id=params["userId"],
        capabilities=list(member(params, "capabilities", [])),
        attributes=member(params, "attributes"),
        now_ms=now_ms(),
        session_minutes=member(params, "sessionDurationInMinutes", DEFAULT_SESSION_MINUTES),
    )
    return {
        "token": token,
        "tokenExpirationTime": iso_ms(claims.token_expires_ms),
        "sessionExpirationTime": iso_ms(claims.session_expires_ms),
    }
