"""The PLIC-Chat wire shapes, pure: client frame → command or :class:`BadFrame`; event → bytes.

Owns: the WebSocket commands and responses of seed 004, its close codes, the REST envelope
``{"error_message", "data"}`` and the REST bodies' validation, and reading the IVS frames the
routers fan out (MESSAGE, ERROR) into what a plic client sees. Must not do I/O or keep state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeGuard

MAX_TEMP_ID_LENGTH = 128
MAX_USER_ID_LENGTH = 128
MAX_REASON_LENGTH = 120  # a WebSocket close reason must fit 123 bytes


class Close(IntEnum):
    """The seed's application close codes."""

    NO_AUTH_TOKEN = 4001
    INVALID_TOKEN = 4002
    AFK = 4003
    ADMIN_ACTION = 4004
    BANNED = 4005
    SERVER_ERROR = 4006
    SERVER_SHUTDOWN = 4007
    NEW_DEVICE = 4008
    CONNECTION_CLOSED = 4009
    BAD_MESSAGE_STRUCTURE = 4010
    HATEFUL_SPEECH = 4011
    UNAUTHORIZED_ACTION = 4012


class BadFrame(Exception):
    """A frame the seed's structure does not allow: the connection is closed with 4010."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True, frozen=True)
class SendMessage:
    room_id: int
    message: str
    message_temp_id: str


def parse_command(data: str | bytes, max_bytes: int) -> SendMessage:
    """``{"type":"SendMessage","data":{room_id, message, message_temp_id}}`` or :class:`BadFrame`."""
    if len(data) > max_bytes or (isinstance(data, str) and len(data.encode("utf-8", "replace")) > max_bytes):
        raise BadFrame(f"Frames must be at most {max_bytes} bytes")
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadFrame("Frame is not valid JSON") from None
    if not isinstance(frame, dict) or "type" not in frame:
        raise BadFrame('Frame must be a JSON object {"type", "data"}')
    if frame["type"] != "SendMessage":
        raise BadFrame(f"Unknown type: {str(frame['type'])[:32]}")
    body = frame.get("data")
    if not isinstance(body, dict):
        raise BadFrame("SendMessage needs data {room_id, message, message_temp_id}")
    room_id, message, temp_id = body.get("room_id"), body.get("message"), body.get("message_temp_id")
    if not _is_int(room_id):
        raise BadFrame("data.room_id must be an integer")
    if not isinstance(message, str):
        raise BadFrame("data.message must be a string")
    if not isinstance(temp_id, str) or len(temp_id) > MAX_TEMP_ID_LENGTH:
        raise BadFrame(f"data.message_temp_id must be a string of at most {MAX_TEMP_ID_LENGTH} characters")
    if not _encodable(message) or not _encodable(temp_id):
        raise BadFrame("Strings must be valid Unicode (no unpaired surrogates)")
    return SendMessage(room_id, message, temp_id)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 53


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _encode(shape: dict[str, Any]) -> bytes:
    return json.dumps(shape, ensure_ascii=False, separators=(",", ":")).encode()


def message_received(room_id: int, sender_id: str, message: str) -> bytes:
    return _encode(
        {"type": "MessageReceived", "data": {"room_id": room_id, "sender_id": sender_id, "message": message}}
    )


def confirmation(temp_id: str, *, confirmed: bool, reason: str = "", message_id: str = "") -> bytes:
    """``message_temp_id`` is echoed beside the seed's fields so a client matches its pending message."""
    data = {"confirmed": confirmed, "reason": reason, "message_id": message_id, "message_temp_id": temp_id}
    return _encode({"type": "MessageSentConfirmation", "data": data})


def disconnection(code: int, reason: str) -> bytes:
    """Sent just before a close, so a client sees the code and reason in the seed's own frame too."""
    return _encode({"type": "Disconnection", "data": {"code": code, "reason": reason}})


def close_reason(reason: str) -> str:
    encoded = reason.encode()[:MAX_REASON_LENGTH]
    return encoded.decode("utf-8", "ignore")


# --- IVS frames from the routers -------------------------------------------------------------
@dataclass(slots=True, frozen=True)
class IvsMessage:
    message_id: str
    request_id: str | None
    sender_id: str
    content: str
    send_time: str


def ivs_message(frame: bytes) -> IvsMessage | None:
    """The MESSAGE in a delivered or history frame; None for any other frame (events)."""
    shape = json.loads(frame)
    if shape.get("Type") != "MESSAGE":
        return None
    return IvsMessage(
        shape["Id"], shape.get("RequestId"), shape["Sender"]["UserId"], shape["Content"], shape.get("SendTime", "")
    )


def error_close(code: int) -> Close | None:
    """Which router refusals end the connection, by the seed's table: not a member (403) is an
    unauthorized action, a review DENY (406) is the seed's hateful-speech close."""
    return {403: Close.UNAUTHORIZED_ACTION, 406: Close.HATEFUL_SPEECH}.get(code)


# --- REST ---------------------------------------------------------------------------------------
def reply(data: Any = None, error: str | None = None) -> bytes:
    return _encode({"error_message": error, "data": data})


class BadBody(Exception):
    pass


@dataclass(slots=True, frozen=True)
class CreateRoom:
    users: list[str]
    apartment_id: int | None


@dataclass(slots=True, frozen=True)
class UpdateRoom:
    room_id: int
    users_to_add: list[str]
    users_to_remove: list[str]


def _object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadBody("Body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadBody("Body must be a JSON object")
    return body


def _users(body: dict[str, Any], name: str, limit: int) -> list[str]:
    users = body.get(name, [])
    if users is None:
        users = []
    if not isinstance(users, list) or len(users) > limit:
        raise BadBody(f"{name} must be an array of at most {limit} user ids")
    for user in users:
        if not isinstance(user, str) or not 0 < len(user) <= MAX_USER_ID_LENGTH or not _encodable(user):
            raise BadBody(f"{name} must hold user ids: strings of 1 to {MAX_USER_ID_LENGTH} characters")
    return list(dict.fromkeys(users))


def parse_create(raw: bytes, max_users: int) -> CreateRoom:
    body = _object(raw)
    apartment = body.get("apartment_id")
    if apartment is not None and not (
        isinstance(apartment, int) and not isinstance(apartment, bool) and abs(apartment) < 1 << 53
    ):
        raise BadBody("apartment_id must be an integer or null")
    return CreateRoom(_users(body, "users", max_users), apartment)


def parse_update(raw: bytes, max_users: int) -> UpdateRoom:
    body = _object(raw)
    room_id = body.get("room_id")
    if not _is_int(room_id):
        raise BadBody("room_id must be an integer")
    return UpdateRoom(room_id, _users(body, "users_to_add", max_users), _users(body, "users_to_remove", max_users))


def parse_room_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 15 or not _is_int(int(text)):
        raise BadBody("The room id must be a positive integer")
    return int(text)
