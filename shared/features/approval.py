"""Connection approval (parley extension): the room-channel items that announce a pending
connection to the room's moderators and admit it.

They travel on the room's channel (``Fanout.publish_rooms``) straight from the gateway or the
control plane, not through a router: every gateway holding a connection in the room is
subscribed to that channel, so the gateway holding the pending connection hears the approval
wherever the moderator is. Neither item is stored in history or logged.
"""

from __future__ import annotations

from shared.protocol import frames
from shared.protocol.envelope import NOT_LOGGED, DeliveryItem, Kind, RoomDelivery
from shared.protocol.ids import new_id


def pending_delivery(
    room_id: str, connection_id: str, user_id: str, user_attributes: dict[str, str] | None, now_ms: int
) -> bytes:
    """``parley:CONNECTION_PENDING`` {ConnectionId, UserId} to the room's moderators."""
    frame = frames.event_frame(
        frame_id=new_id(),
        event_name=frames.EVENT_CONNECTION_PENDING,
        attributes={"ConnectionId": connection_id, "UserId": user_id},
        send_ms=now_ms,
        sender_user_id=user_id,
        sender_attributes=user_attributes,
    )
    item = DeliveryItem(Kind.SEND_EVENT, frame, NOT_LOGGED, received_ms=now_ms, only_moderators=True)
    return RoomDelivery(room_id, [item]).encode()


def approved_delivery(room_id: str, connection_id: str, request_id: str | None, now_ms: int) -> bytes:
    """``parley:CONNECTION_APPROVED`` {ConnectionId} to the room's moderators and, when it is
    still pending in this room, to the approved connection, which from then on receives."""
    frame_id = new_id()
    frame = frames.event_frame(
        frame_id=frame_id,
        event_name=frames.EVENT_CONNECTION_APPROVED,
        attributes={"ConnectionId": connection_id},
        send_ms=now_ms,
        request_id=request_id,
    )
    item = DeliveryItem(
        Kind.SEND_EVENT, frame, NOT_LOGGED, received_ms=now_ms, only_moderators=True, approve_connection=connection_id
    )
    return RoomDelivery(room_id, [item]).encode()
