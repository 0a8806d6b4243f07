"""The groups-chat wire shapes, pure: client RPC frame → command or :class:`BadFrame`; event → bytes.

Owns: the seed's RPC methods (20 events on connect, 40 send, 41/42 delivered/read, 60/61 typing),
its events ``{"type", "timestamp", "body"}`` (20–23 messages, 40/41 typing, 70/72/73 groups, and
this front's ERROR event), the REST bodies' validation, and reading the IVS frames the routers
fan out (live) or keep in a user's log (method 20) into groups-chat events. Must not do I/O or keep state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from shared.protocol.timestamps import parse_iso

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 256

EVENT_DELIVERED = "parley:DELIVERED"
EVENT_READ = "parley:READ"
EVENT_TYPING_START = "parley:TYPING_START"
EVENT_TYPING_STOP = "parley:TYPING_STOP"


class Method(IntEnum):
    """The client's RPC methods."""

    EVENTS = 20
    SEND = 40
    DELIVERED = 41
    READ = 42
    TYPING_START = 60
    TYPING_END = 61


class Event(IntEnum):
    """The server's event types. ERROR is this front's (the seed shows none)."""

    ERROR = 10
    MESSAGE = 20
    MESSAGE_SENT = 21
    MESSAGE_DELIVERED = 22
    MESSAGE_READ = 23
    TYPING_START = 40
    TYPING_END = 41
    GROUP_CREATED = 70
    USER_JOINED = 72
    USER_LEFT = 73


RECEIPTS = {Method.DELIVERED: EVENT_DELIVERED, Method.READ: EVENT_READ}
TYPING = {Method.TYPING_START: EVENT_TYPING_START, Method.TYPING_END: EVENT_TYPING_STOP}
RECEIPT_EVENTS = {EVENT_DELIVERED: Event.MESSAGE_DELIVERED, EVENT_READ: Event.MESSAGE_READ}
TYPING_EVENTS = {EVENT_TYPING_START: Event.TYPING_START, EVENT_TYPING_STOP: Event.TYPING_END}


class BadFrame(Exception):
    """A frame the seed does not allow: answered with an ERROR event, the connection stays."""

    def __init__(self, reason: str, method: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.method = method


@dataclass(slots=True, frozen=True)
class Command:
    method: Method
    group_id: str = ""  # 40, 60, 61
    data: str = ""  # 40
    message_id: str = ""  # 41, 42


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _id(body: dict[str, Any], name: str, method: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH or not _encodable(value):
        raise BadFrame(f"body.{name} must be a string of 1 to {MAX_ID_LENGTH} characters", method)
    return value


def parse_command(data: str | bytes, max_bytes: int) -> Command:
    """``{"method": N, "body": {...}}`` (``timestamp`` optional, ignored) or :class:`BadFrame`."""
    if len(data) > max_bytes or (isinstance(data, str) and len(data.encode("utf-8", "replace")) > max_bytes):
        raise BadFrame(f"Frames must be at most {max_bytes} bytes")
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadFrame("Frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise BadFrame('Frame must be a JSON object {"method", "body"}')
    raw = frame.get("method")
    if not isinstance(raw, int) or isinstance(raw, bool) or raw not in Method._value2member_map_:
        raise BadFrame(f"Unknown method: {str(raw)[:32]}")
    method = Method(raw)
    if method == Method.EVENTS:
        return Command(method)
    body = frame.get("body")
    if not isinstance(body, dict):
        raise BadFrame(f"Method {int(method)} needs a body object", method)
    if method == Method.SEND:
        data_field = body.get("data")
        if not isinstance(data_field, str) or not data_field or not _encodable(data_field):
            raise BadFrame("body.data must be a non-empty string", method)
        return Command(method, group_id=_id(body, "group_id", method), data=data_field)
    if method in RECEIPTS:
        return Command(method, message_id=_id(body, "message_id", method))
    return Command(method, group_id=_id(body, "group_id", method))


def encode(kind: Event, timestamp: int, body: dict[str, Any]) -> bytes:
    return json.dumps(
        {"type": int(kind), "timestamp": timestamp, "body": body}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def error(timestamp: int, code: int, message: str, method: int | None = None, **extra: str) -> bytes:
    body: dict[str, Any] = {"code": code, "message": message}
    if method is not None:
        body["method"] = method
    body.update(extra)
    return encode(Event.ERROR, timestamp, body)


# --- IVS frames from the routers -------------------------------------------------------------
@dataclass(slots=True, frozen=True)
class Delivered:
    """A delivered IVS frame as this front reads it."""

    kind: str  # "MESSAGE" or the EVENT's name
    frame_id: str
    request_id: str | None
    sender_id: str
    send_ms: int
    content: str = ""
    attributes: dict[str, str] | None = None
    recipient: str = ""


def delivered(frame: bytes) -> Delivered | None:
    return _delivered(json.loads(frame))


def _delivered(shape: dict[str, Any]) -> Delivered | None:
    kind = shape.get("Type")
    if kind not in ("MESSAGE", "EVENT"):
        return None
    sender = (shape.get("Sender") or {}).get("UserId", "")
    return Delivered(
        "MESSAGE" if kind == "MESSAGE" else str(shape.get("EventName", "")),
        shape["Id"],
        shape.get("RequestId"),
        sender,
        parse_iso(shape["SendTime"]) if shape.get("SendTime") else 0,
        shape.get("Content", ""),
        shape.get("Attributes") or {},
        shape.get("Recipient", ""),
    )


def _event_body(item: Delivered, group_id: str) -> tuple[Event, dict[str, Any]] | None:
    if item.kind == "MESSAGE":
        return Event.MESSAGE, {
            "message_id": item.frame_id,
            "data": item.content,
            "group_id": group_id,
            "user_id": item.sender_id,
        }
    if item.kind in RECEIPT_EVENTS and item.attributes:
        body = {"message_id": item.attributes.get("MessageId", ""), "group_id": group_id, "user_id": item.sender_id}
        return RECEIPT_EVENTS[item.kind], body
    if item.kind in TYPING_EVENTS:
        return TYPING_EVENTS[item.kind], {"group_id": group_id, "user_id": item.sender_id}
    return None


def _encoded(item: Delivered, group_id: str) -> tuple[Event, dict[str, Any], bytes] | None:
    found = _event_body(item, group_id)
    if found is None:
        return None
    kind, body = found
    return kind, body, encode(kind, item.send_ms, body)


def event_of(item: Delivered, group_id: str) -> tuple[Event, bytes] | None:
    """The groups-chat event a delivered frame becomes, encoded once; None if it has none."""
    found = _encoded(item, group_id)
    return None if found is None else (found[0], found[2])


@dataclass(slots=True, frozen=True)
class Logged:
    """An event of a user's log, as method 20 sends it."""

    kind: int
    timestamp: int
    body: dict[str, Any]
    raw: bytes


def logged(group_id: str, payload: bytes) -> Logged | None:
    """A user-log entry's event: an IVS frame a router kept for the user (re-encoded as its
    groups-chat event) or an event this front appended (sent as is); None if it has none."""
    shape = json.loads(payload)
    if "Type" not in shape:
        return Logged(int(shape["type"]), int(shape["timestamp"]), dict(shape["body"]), payload)
    item = _delivered(shape)
    found = None if item is None else _encoded(item, group_id)
    if item is None or found is None:
        return None
    kind, body, raw = found
    return Logged(int(kind), item.send_ms, body, raw)


# --- REST ---------------------------------------------------------------------------------------
class BadBody(Exception):
    pass


def rest_error(message: str) -> bytes:
    """Every REST refusal: ``{"error": "<why>"}`` with the HTTP status (the seed shows none)."""
    return json.dumps({"error": message}).encode()


def body_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise BadBody("Body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadBody("Body must be a JSON object")
    return body


def string(body: dict[str, Any], name: str, *, required: bool = True, limit: int = 1024) -> str:
    value = body.get(name, "" if not required else None)
    if not isinstance(value, str) or len(value) > limit or (required and not value) or not _encodable(value):
        raise BadBody(f"{name} must be a string of {'1' if required else '0'} to {limit} characters")
    return value


@dataclass(slots=True, frozen=True)
class CreateGroup:
    name: str
    user_ids: list[str]


def parse_group(raw: bytes, max_members: int) -> CreateGroup:
    body = body_object(raw)
    name = string(body, "name", limit=MAX_NAME_LENGTH)
    users = body.get("user_ids", [])
    if not isinstance(users, list) or len(users) > max_members:
        raise BadBody(f"user_ids must be an array of at most {max_members} user ids")
    for user in users:
        if not isinstance(user, str) or not 0 < len(user) <= MAX_ID_LENGTH or not _encodable(user):
            raise BadBody(f"user_ids must hold user ids: strings of 1 to {MAX_ID_LENGTH} characters")
    return CreateGroup(name, list(dict.fromkeys(users)))
