"""Bans (a parley extension): a user kept out of one room until the ban expires.

A ban is a mark (``shared.engine.marks``) with the ban's duration as its TTL, so it lifts itself.
The control plane sets and lifts it (BanUser/UnbanUser); CreateChatToken and the gateway's
handshake check it.
"""

from __future__ import annotations

from shared.engine.marks import Marks


def ban_key(room_id: str, user_id: str) -> str:
    return f"ban:{room_id}:{user_id}"


async def is_banned(marks: Marks, room_id: str, user_id: str) -> bool:
    return (await marks.claimed([ban_key(room_id, user_id)]))[0]


async def ban(marks: Marks, room_id: str, user_id: str, duration_ms: int) -> None:
    await marks.claim_many([ban_key(room_id, user_id)], duration_ms)


async def unban(marks: Marks, room_id: str, user_id: str) -> bool:
    return await marks.release(ban_key(room_id, user_id))
