"""AddRoomMembers / RemoveRoomMembers / ListRoomMembers (parley extensions, ``parleychat`` model).

The member list is kept for any room; it matters when the room is ``membersOnly``
(UpdateRoomExtensions): then only members get chat tokens and connect, and the router refuses
anyone else's actions (``shared/features/membership.py``). Every change is announced to the room, in order
with its messages, as ``parley:MEMBER_ADDED`` / ``parley:MEMBER_REMOVED`` events (one per user
actually added or removed). A member removed from a members-only room is then disconnected like
DisconnectUser (``aws:DISCONNECT_USER`` event, close 1000).
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, load_room, member
from api.presence import user_cursor
from shared.clock import now_ms
from shared.features import membership, presence
from shared.protocol.envelope import ActionEnvelope, ControlNotice, ControlTopic, Kind
from shared.protocol.ids import new_id

DEFAULT_PAGE = 50


async def _changed(ctx: ApiContext, room_id: str) -> None:
    await ctx.bus.fanout.publish_control(ControlNotice(ControlTopic.MEMBERS_CHANGED, room_id).encode())


async def add_room_members(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    added = await ctx.store.members.add(room.id, list(params["userIds"]))
    if added:
        await _changed(ctx, room.id)
    for user_id in added:
        await ctx.bus.actions.publish(membership.membership_action(room.id, membership.EVENT_MEMBER_ADDED, user_id))
    return {"addedUserIds": added}


async def remove_room_members(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    removed = await ctx.store.members.remove(room.id, list(params["userIds"]))
    if removed:
        await _changed(ctx, room.id)  # the router refuses their in-flight actions from now on
    for user_id in removed:
        await ctx.bus.actions.publish(membership.membership_action(room.id, membership.EVENT_MEMBER_REMOVED, user_id))
        if room.members_only:
            await ctx.bus.actions.publish(
                ActionEnvelope(
                    kind=Kind.DISCONNECT_USER,
                    frame_id=new_id(),
                    room_id=room.id,
                    received_ms=now_ms(),
                    disconnect_user_id=user_id,
                    reason="Removed from the room's members",
                )
            )
    return {"removedUserIds": removed}


async def list_room_members(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    limit = member(params, "maxResults", DEFAULT_PAGE)
    rows = await ctx.store.members.page(room.id, user_cursor(params), limit + 1)
    result: dict[str, Any] = {"userIds": rows[:limit]}
    if len(rows) > limit:
        result["nextToken"] = presence.encode_token(rows[limit - 1])
    return result
