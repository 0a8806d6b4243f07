"""The handshake decision: may this WebSocket upgrade become a chat connection?

Order of checks: a token is offered → its signature and connect-by time are good → its room
still exists → its user is not banned from the room (and is a member, if the room is members-only)
→ the account's connection quota has room →
the token was never used (consumed last, so a refusal for another reason does not burn it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

from websockets.exceptions import InvalidHeaderFormat
from websockets.headers import parse_subprotocol

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


def offered_token(headers: Sequence[str]) -> str | None:
    """The chat token: the first ``Sec-WebSocket-Protocol`` value (the only one IVS SDKs offer).

    ``headers`` holds every such header of the request: RFC 6455 lets a client send several, which
    mean the same as one comma-joined header. They are parsed exactly as websockets parses them
    to pick the subprotocol it echoes (``_echo_subprotocol``), so the token admitted here is the
    one echoed; and a header websockets would refuse (400) offers no token, so it burns none.
    """
    offered: list[str] = []
    try:
        for header in headers:
            offered.extend(parse_subprotocol(header))
    except InvalidHeaderFormat:
        return None
    return offered[0] if offered else None


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
