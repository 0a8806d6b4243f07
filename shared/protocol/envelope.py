"""Internal bus frames (msgpack), the one definition of what travels between components.

- :class:`ActionEnvelope`: gateway/control plane → router, over the sharded action queues.
- :class:`RoomDelivery`: router → every gateway holding the room, on the room's channel. Frames
  inside are already-encoded JSON bytes, so a gateway never re-encodes per connection.
- :class:`ConnectionNotice`: router → the one gateway that holds a connection (ERROR frames).

Encoded as msgpack arrays in field order: compact and cheap to decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack


def _row(obj: Any) -> list[Any]:
    """Field values in declaration order, shallow (``dataclasses.astuple`` deep-copies, slowly)."""
    return [getattr(obj, name) for name in obj.__slots__]


class Kind:
    """What an action asks the router to do. The names are IVS's metric ``Action`` values."""

    SEND_MESSAGE = "SendMessage"
    DELETE_MESSAGE = "DeleteMessage"
    DISCONNECT_USER = "DisconnectUser"
    SEND_EVENT = "SendEvent"
    # parley extensions: a user's first connection / last disconnection in a room (target: the
    # event name, user_id/user_attributes: who), and membership changes (target: the event name,
    # user_id: the member) — through the room's shard so they are ordered with its messages
    PRESENCE = "Presence"
    MEMBERSHIP = "Membership"
    ALL = (SEND_MESSAGE, DELETE_MESSAGE, DISCONNECT_USER, SEND_EVENT)


@dataclass(slots=True)
class ActionEnvelope:
    kind: str
    frame_id: str  # Id of the frame this action produces; unique, and the redelivery de-dup key
    room_id: str
    received_ms: int
    request_id: str | None = None
    gateway_id: str = ""  # empty for control-plane actions (no connection to answer)
    connection_id: str = ""
    user_id: str = ""  # sender
    user_attributes: dict[str, str] | None = None
    ip: str = ""
    content: str = ""
    attributes: dict[str, str] | None = None
    target: str = ""  # message id to delete, user id to disconnect, or event name
    reason: str | None = None
    recipient: str = ""  # parley extension: a direct message/event to this user (and the sender)

    def encode(self) -> bytes:
        return msgpack.packb(_row(self))

    @classmethod
    def decode(cls, data: bytes) -> ActionEnvelope:
        return cls(*msgpack.unpackb(data))


NOT_LOGGED = ""  # DeliveryItem.log_type of frames kept out of chat logs (client events, approvals)


@dataclass(slots=True)
class DeliveryItem:
    kind: str  # Kind.* of the action that produced the frame (for Deliveries{Action})
    frame: bytes  # UTF-8 JSON, sent as a text frame as is
    log_type: str = "MESSAGE"  # MESSAGE | EVENT, for chat logs
    close_user_id: str = ""  # after sending, close this user's connections in the room
    close_reason: str = ""
    received_ms: int = 0  # when the request was accepted, for send-to-deliver latency
    frame_id: str = ""  # the frame's Id (catch-up de-duplicates live frames against history)
    # parley extensions (issue 6). Targeting: none set = every (approved) connection in the room.
    only_users: list[str] | None = None  # direct message/event: only these users' connections
    only_moderators: bool = False  # only connections whose token has DISCONNECT_USER
    approve_connection: str = ""  # admit this pending connection; it gets this frame too


@dataclass(slots=True)
class RoomDelivery:
    room_id: str
    items: list[DeliveryItem] = field(default_factory=list)

    def encode(self) -> bytes:
        return msgpack.packb([self.room_id, [_row(item) for item in self.items]])

    @classmethod
    def decode(cls, data: bytes) -> RoomDelivery:
        room_id, items = msgpack.unpackb(data)
        return cls(room_id, [DeliveryItem(*item) for item in items])


@dataclass(slots=True)
class ConnectionNotice:
    connection_id: str
    frame: bytes
    close_code: int = 0  # non-zero: close the connection with this code after the frame

    def encode(self) -> bytes:
        return msgpack.packb(_row(self))

    @classmethod
    def decode(cls, data: bytes) -> ConnectionNotice:
        return cls(*msgpack.unpackb(data))


@dataclass(slots=True)
class ControlNotice:
    """A small broadcast to every process: ``room_changed`` (updated or deleted) for now."""

    topic: str
    subject: str

    ROOM_CHANGED = "room_changed"
    LOGGING_CONFIGURATION_CHANGED = "logging_configuration_changed"  # subject: the configuration id
    MEMBERS_CHANGED = "members_changed"  # subject: the room id whose member list changed

    def encode(self) -> bytes:
        return msgpack.packb([self.topic, self.subject])

    @classmethod
    def decode(cls, data: bytes) -> ControlNotice:
        topic, subject = msgpack.unpackb(data)
        return cls(topic, subject)
