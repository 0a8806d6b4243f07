"""The handshake decision: may this WebSocket upgrade become a chat connection?

Order of checks: a token is offered → its signature and connect-by time are good → its room
still exists → its user is not banned from the room (and is a member, if the room is members-only)
→ the account's connection quota has room →
the token was never used (consumed last, so a refusal for another reason does not burn it).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from shared import bans, membership, tokens
from shared.store import ROOM, Record, Store

CLAIM_SLACK_MS = 60_000


@dataclass(slots=True, frozen=True)
class Admitted:
    token: tokens.ChatToken
    room: Record  # the room's record as read at the handshake (what the connection starts with)


@dataclass(slots=True, frozen=True)
class Rejection:
    status: HTTPStatus
    reason: str  # also the metric label: keep it a short fixed word
    detail: str


def offered_token(header: str | None) -> str | None:
    """The chat token is the only ``Sec-WebSocket-Protocol`` value the IVS SDKs offer."""
    if not header:
        return None
    first = header.split(",", 1)[0].strip()
    return first or None


async def admit(
    *,
    store: Store,
    secret: tokens.Keys,  # one key or a rotation list (any verifies)
    token: str | None,
    now_ms: int,
    connections_in_use: int,
    max_connections: int,
) -> Admitted | Rejection:
    if token is None:
        return Rejection(HTTPStatus.UNAUTHORIZED, "missing_token", "A chat token is required")
    try:
        claims = tokens.verify(secret, token, now_ms=now_ms)
    except tokens.TokenError as exc:
        return Rejection(HTTPStatus.UNAUTHORIZED, "invalid_token", str(exc))
    # the room and the user's ban in one round trip: every connect pays for this
    room, (banned,) = await store.get_with_claimed(ROOM, claims.room_id, [bans.ban_key(claims.room_id, claims.user_id)])
    if room is None:
        return Rejection(HTTPStatus.NOT_FOUND, "room_not_found", "The token's room does not exist")
    if room.get("members_only") and not await membership.is_member(store, claims.room_id, claims.user_id):
        return Rejection(HTTPStatus.FORBIDDEN, "not_member", membership.NOT_A_MEMBER)
    if banned:
        return Rejection(HTTPStatus.FORBIDDEN, "banned", "The user is banned from this room")
    if connections_in_use >= max_connections:
        return Rejection(HTTPStatus.SERVICE_UNAVAILABLE, "quota", "Concurrent connection quota reached")
    ttl = max(claims.token_expires_ms - now_ms, 0) + CLAIM_SLACK_MS
    if not await store.claim(f"token:{claims.token_id}", ttl):
        return Rejection(HTTPStatus.UNAUTHORIZED, "token_used", "This chat token was already used")
    return Admitted(claims, room)
