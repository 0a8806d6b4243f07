"""SendEvent, DeleteMessage, DisconnectUser: control-plane messaging actions.

The api decides nothing about delivery: it checks the room exists, then hands an
``ActionEnvelope`` to the room's shard, exactly like a gateway does for a client's request. The
router turns it into the EVENT frame (and, for DisconnectUser, closes the user's connections).
The envelope's ``frame_id`` is the Id of that frame, which SendEvent and DeleteMessage return.
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, load_room
from shared.clock import now_ms
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.ids import new_id


async def _publish(ctx: ApiContext, params: dict[str, Any], kind: Kind, **fields: Any) -> str:
    """Queue the room's action whose ``fields`` say what it carries; return its frame id."""
    room = await load_room(ctx, params["roomIdentifier"])
    frame_id = new_id()
    await ctx.bus.actions.publish(
        ActionEnvelope(kind=kind, frame_id=frame_id, room_id=room.id, received_ms=now_ms(), **fields)
    )
    return frame_id


async def send_event(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    frame_id = await _publish(
        ctx, params, Kind.SEND_EVENT, event_name=params["eventName"], attributes=params.get("attributes")
    )
    return {"id": frame_id}


async def delete_message(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    frame_id = await _publish(ctx, params, Kind.DELETE_MESSAGE, message_id=params["id"], reason=params.get("reason"))
    return {"id": frame_id}


async def disconnect_user(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    await _publish(ctx, params, Kind.DISCONNECT_USER, disconnect_user_id=params["userId"], reason=params.get("reason"))
    return {}
