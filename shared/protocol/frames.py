"""The IVS Chat messaging protocol: the one definition of every client and server frame.

Client → server: JSON text frames with ``Action`` SEND_MESSAGE, DELETE_MESSAGE or
DISCONNECT_USER (IVS), and the parley extensions GET_HISTORY, GET_PRESENCE, SEND_EVENT, PING
and APPROVE_CONNECTION, which IVS SDKs never send. :func:`parse_client_frame` turns one into a
:class:`ClientRequest` or raises :class:`FrameError` carrying the IVS ``ErrorCode`` the client
must see.

Server → client: MESSAGE, EVENT and ERROR frames (IVS), plus HISTORY, PRESENCE and PONG frames
that only answer extension requests; each is encoded once to UTF-8 JSON bytes by the
``*_frame`` functions here. Every component that emits a frame calls these; nobody builds the
dicts by hand.

Pure functions only: no sockets, no clocks, no randomness.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

import orjson

from shared.protocol.ids import CONNECTION_ID_RE, ID12_RE
from shared.protocol.text import UNPAIRED_SURROGATE, has_unencodable, is_encodable
from shared.protocol.timestamps import iso_ms


class Action(StrEnum):
    SEND_MESSAGE = "SEND_MESSAGE"
    DELETE_MESSAGE = "DELETE_MESSAGE"
    DISCONNECT_USER = "DISCONNECT_USER"
    GET_HISTORY = "GET_HISTORY"  # parley extension: answered with a HISTORY frame
    GET_PRESENCE = "GET_PRESENCE"  # parley extension: answered with a PRESENCE frame
    SEND_EVENT = "SEND_EVENT"  # parley extension: ephemeral client events (typing, receipts, app:*)
    PING = "PING"  # parley extension: answered by the gateway with a PONG frame
    APPROVE_CONNECTION = "APPROVE_CONNECTION"  # parley extension: a moderator admits a pending connection


class ErrorCode(IntEnum):
    """``ErrorCode`` values of ERROR frames (IVS Chat Messaging API error table)."""

    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    REJECTED = 406
    TOO_LARGE = 413
    TOO_MANY_REQUESTS = 429
    INTERNAL = 500


# Protocol limits (spec §10). Room-specific limits are checked by the router.
MAX_MESSAGE_LENGTH = 500  # code points, the highest maximumMessageLength a room may have
MAX_ATTRIBUTES_BYTES = 1024  # UTF-8 bytes of all keys and values
MAX_REASON_LENGTH = 256
MAX_USER_ID_LENGTH = 128
MAX_REQUEST_ID_LENGTH = 128
MAX_EVENT_NAME_LENGTH = 100

DEFAULT_HISTORY_PAGE = 50
MAX_HISTORY_PAGE = 100
DEFAULT_PRESENCE_PAGE = 100  # GET_PRESENCE users per frame
MAX_PRESENCE_PAGE = 500

EVENT_DELETE_MESSAGE = "aws:DELETE_MESSAGE"
EVENT_DISCONNECT_USER = "aws:DISCONNECT_USER"

# parley extension events. Clients send the first four with SEND_EVENT (plus their own names
# under ``app:``); the connection-approval events come from parley itself.
EVENT_TYPING_START = "parley:TYPING_START"
EVENT_TYPING_STOP = "parley:TYPING_STOP"
EVENT_DELIVERED = "parley:DELIVERED"  # Attributes.MessageId: the message the sender received
EVENT_READ = "parley:READ"  # Attributes.MessageId: the message the sender read
EVENT_CONNECTION_PENDING = "parley:CONNECTION_PENDING"  # to moderators: {ConnectionId, UserId}
EVENT_CONNECTION_APPROVED = "parley:CONNECTION_APPROVED"  # to moderators and the admitted connection
CLIENT_EVENT_NAMES = frozenset({EVENT_TYPING_START, EVENT_TYPING_STOP, EVENT_DELIVERED, EVENT_READ})
RECEIPT_EVENT_NAMES = frozenset({EVENT_DELIVERED, EVENT_READ})  # need Attributes.MessageId
APP_EVENT_PREFIX = "app:"
_APP_EVENT_RE = re.compile(r"app:[A-Za-z0-9_.:/-]{1,96}")


class FrameError(Exception):
    """A client frame that cannot be served; becomes an ERROR frame to that client only."""

    def __init__(self, code: int, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(slots=True)
class ClientRequest:
    action: Action
    request_id: str | None
    content: str = ""
    attributes: dict[str, str] | None = None
    message_id: str = ""  # DELETE_MESSAGE: the message deleted
    disconnect_user_id: str = ""  # DISCONNECT_USER: whose connections are closed
    reason: str | None = None
    after: str = ""  # GET_HISTORY: a message Id, GET_PRESENCE: a UserId; the page starts after it
    limit: int = 0  # GET_HISTORY, GET_PRESENCE page size
    recipient: str = ""  # SEND_MESSAGE / SEND_EVENT: direct to this user only (parley extension)
    event_name: str = ""  # SEND_EVENT
    connection_id: str = ""  # APPROVE_CONNECTION target


def attributes_size(attributes: dict[str, str]) -> int:
    """Bytes an attribute map counts against its 1 KB limit: UTF-8 of every key and value."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())


def check_attributes(value: Any, field: str, request_id: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise FrameError(ErrorCode.BAD_REQUEST, f"{field} must be a map of strings to strings", request_id)
    if attributes_size(value) > MAX_ATTRIBUTES_BYTES:
        raise FrameError(ErrorCode.TOO_LARGE, f"{field} must be at most {MAX_ATTRIBUTES_BYTES} bytes", request_id)
    return value


def _required_str(body: dict[str, Any], field: str, request_id: str | None) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise FrameError(ErrorCode.BAD_REQUEST, f"{field} is required and must be a non-empty string", request_id)
    return value


def _reason(body: dict[str, Any], request_id: str | None) -> str | None:
    value = body.get("Reason")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FrameError(ErrorCode.BAD_REQUEST, "Reason must be a non-empty string", request_id)
    if len(value) > MAX_REASON_LENGTH:
        raise FrameError(ErrorCode.TOO_LARGE, f"Reason must be at most {MAX_REASON_LENGTH} characters", request_id)
    return value


def parse_client_frame(data: str | bytes) -> ClientRequest:
    """Validate one client frame. Raises :class:`FrameError` with the code the client must see."""
    if isinstance(data, bytes):
        raise FrameError(ErrorCode.BAD_REQUEST, "Frames must be UTF-8 JSON text frames")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise FrameError(ErrorCode.BAD_REQUEST, "Frame is not valid JSON") from None
    if not isinstance(body, dict):
        raise FrameError(ErrorCode.BAD_REQUEST, "Frame must be a JSON object")
    # websockets decoded the text as strict UTF-8, so a lone surrogate can only come from a \u
    # escape: frames without one (nearly all) skip the walk.
    if "\\u" in data and has_unencodable(body):
        raise _unencodable(body)

    request_id = body.get("RequestId")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID_LENGTH):
        raise FrameError(
            ErrorCode.BAD_REQUEST, f"RequestId must be a string of at most {MAX_REQUEST_ID_LENGTH} characters"
        )

    action = body.get("Action")
    if action == Action.SEND_MESSAGE:
        content = body.get("Content")
        if not isinstance(content, str) or not content:
            raise FrameError(ErrorCode.BAD_REQUEST, "Content is required and must be a non-empty string", request_id)
        if len(content) > MAX_MESSAGE_LENGTH:
            raise FrameError(
                ErrorCode.BAD_REQUEST, f"Messages must be at most {MAX_MESSAGE_LENGTH} characters", request_id
            )
        attributes = check_attributes(body.get("Attributes"), "Attributes", request_id)
        recipient = _recipient(body, request_id)
        return ClientRequest(
            Action.SEND_MESSAGE, request_id, content=content, attributes=attributes, recipient=recipient
        )
    if action == Action.DELETE_MESSAGE:
        message_id = _required_str(body, "Id", request_id)
        if not ID12_RE.fullmatch(message_id):
            raise FrameError(ErrorCode.BAD_REQUEST, "Id must be 12 characters of [a-zA-Z0-9]", request_id)
        return ClientRequest(Action.DELETE_MESSAGE, request_id, message_id=message_id, reason=_reason(body, request_id))
    if action == Action.DISCONNECT_USER:
        user_id = _required_str(body, "UserId", request_id)
        if len(user_id) > MAX_USER_ID_LENGTH:
            raise FrameError(ErrorCode.TOO_LARGE, f"UserId must be at most {MAX_USER_ID_LENGTH} characters", request_id)
        return ClientRequest(
            Action.DISCONNECT_USER, request_id, disconnect_user_id=user_id, reason=_reason(body, request_id)
        )
    if action == Action.GET_HISTORY:
        limit = body.get("Limit", DEFAULT_HISTORY_PAGE)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_HISTORY_PAGE:
            raise FrameError(
                ErrorCode.BAD_REQUEST, f"Limit must be an integer from 1 to {MAX_HISTORY_PAGE}", request_id
            )
        after = body.get("After")
        if after is not None and (not isinstance(after, str) or not ID12_RE.fullmatch(after)):
            raise FrameError(ErrorCode.BAD_REQUEST, "After must be a message Id", request_id)
        return ClientRequest(Action.GET_HISTORY, request_id, after=after or "", limit=limit)
    if action == Action.SEND_EVENT:
        return _parse_send_event(body, request_id)
    if action == Action.PING:
        return ClientRequest(Action.PING, request_id)
    if action == Action.APPROVE_CONNECTION:
        connection_id = _required_str(body, "ConnectionId", request_id)
        if not CONNECTION_ID_RE.fullmatch(connection_id):
            raise FrameError(
                ErrorCode.BAD_REQUEST, "ConnectionId must be 12 characters of [a-zA-Z0-9] or a UUID", request_id
            )
        return ClientRequest(Action.APPROVE_CONNECTION, request_id, connection_id=connection_id)
    if action == Action.GET_PRESENCE:
        limit = body.get("Limit", DEFAULT_PRESENCE_PAGE)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PRESENCE_PAGE:
            raise FrameError(
                ErrorCode.BAD_REQUEST, f"Limit must be an integer from 1 to {MAX_PRESENCE_PAGE}", request_id
            )
        after = body.get("After")
        if after is not None and (not isinstance(after, str) or not 1 <= len(after) <= MAX_USER_ID_LENGTH):
            raise FrameError(ErrorCode.BAD_REQUEST, "After must be a UserId", request_id)
        return ClientRequest(Action.GET_PRESENCE, request_id, after=after or "", limit=limit)
    if action is None:
        raise FrameError(ErrorCode.BAD_REQUEST, "Action is required", request_id)
    raise FrameError(ErrorCode.BAD_REQUEST, f"Unknown Action: {str(action)[:64]}", request_id)


# Fields a client frame may carry: an ERROR names one of these, never a client-chosen key.
_FIELDS = frozenset(
    {
        "Action",
        "RequestId",
        "Content",
        "Attributes",
        "Id",
        "UserId",
        "Reason",
        "Recipient",
        "EventName",
        "After",
        "Limit",
        "ConnectionId",
    }
)


def _unencodable(body: dict[str, Any]) -> FrameError:
    """The ERROR 400 for a frame holding an unpaired surrogate. It names the first such field
    and echoes ``RequestId`` only when that can be encoded itself."""
    field = next(key for key, value in body.items() if not is_encodable(key) or has_unencodable(value))
    request_id = body.get("RequestId")
    echo = isinstance(request_id, str) and len(request_id) <= MAX_REQUEST_ID_LENGTH and is_encodable(request_id)
    name = field if field in _FIELDS else "Frame text"
    return FrameError(ErrorCode.BAD_REQUEST, f"{name} {UNPAIRED_SURROGATE}", request_id if echo else None)


def _recipient(body: dict[str, Any], request_id: str | None) -> str:
    """Optional ``Recipient`` (parley extension): a UserId; absent means the whole room."""
    if body.get("Recipient") is None:
        return ""
    recipient = _required_str(body, "Recipient", request_id)
    if len(recipient) > MAX_USER_ID_LENGTH:
        raise FrameError(ErrorCode.TOO_LARGE, f"Recipient must be at most {MAX_USER_ID_LENGTH} characters", request_id)
    return recipient


def check_client_event_name(name: str) -> bool:
    """Names clients may send: parley's typing/receipt events, or their own under ``app:``."""
    return name in CLIENT_EVENT_NAMES or _APP_EVENT_RE.fullmatch(name) is not None


def _parse_send_event(body: dict[str, Any], request_id: str | None) -> ClientRequest:
    name = _required_str(body, "EventName", request_id)
    if not check_client_event_name(name):
        raise FrameError(
            ErrorCode.BAD_REQUEST,
            "EventName must be parley:TYPING_START, parley:TYPING_STOP, parley:DELIVERED, parley:READ "
            "or app: followed by 1 to 96 characters of [A-Za-z0-9_.:/-]",
            request_id,
        )
    attributes = check_attributes(body.get("Attributes"), "Attributes", request_id)
    if name in RECEIPT_EVENT_NAMES:
        message_id = (attributes or {}).get("MessageId", "")
        if not ID12_RE.fullmatch(message_id):
            raise FrameError(ErrorCode.BAD_REQUEST, f"{name} needs Attributes.MessageId, a message Id", request_id)
    return ClientRequest(
        Action.SEND_EVENT, request_id, attributes=attributes, event_name=name, recipient=_recipient(body, request_id)
    )


# --- server → client -------------------------------------------------------------------------


def _encode(frame: dict[str, Any]) -> bytes:
    # The bytes json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode() gives, for
    # every code point (tests/test_frames.py), at about 0.4 µs instead of 10: once per message.
    return orjson.dumps(frame)


def message_frame(
    *,
    frame_id: str,
    request_id: str | None,
    content: str,
    attributes: dict[str, str] | None,
    send_ms: int,
    sender_user_id: str,
    sender_attributes: dict[str, str] | None,
    recipient: str = "",
) -> bytes:
    frame: dict[str, Any] = {"Type": "MESSAGE", "Id": frame_id}
    if request_id is not None:
        frame["RequestId"] = request_id
    frame["Content"] = content
    frame["Attributes"] = attributes or {}
    frame["SendTime"] = iso_ms(send_ms)
    frame["Sender"] = {"UserId": sender_user_id, "Attributes": sender_attributes or {}}
    if recipient:  # parley extension: a direct message, delivered to sender and recipient only
        frame["Recipient"] = recipient
    return _encode(frame)


def event_frame(
    *,
    frame_id: str,
    event_name: str,
    attributes: dict[str, str] | None,
    send_ms: int,
    request_id: str | None = None,
    sender_user_id: str = "",
    sender_attributes: dict[str, str] | None = None,
    recipient: str = "",
) -> bytes:
    frame: dict[str, Any] = {"Type": "EVENT", "Id": frame_id}
    if request_id is not None:
        frame["RequestId"] = request_id
    frame["EventName"] = event_name
    frame["Attributes"] = attributes or {}
    frame["SendTime"] = iso_ms(send_ms)
    if sender_user_id:  # parley extension: client events (SEND_EVENT) say who sent them
        frame["Sender"] = {"UserId": sender_user_id, "Attributes": sender_attributes or {}}
    if recipient:  # parley extension: a direct event, delivered to sender and recipient only
        frame["Recipient"] = recipient
    return _encode(frame)


def pong_frame(*, frame_id: str, request_id: str | None, send_ms: int) -> bytes:
    """parley extension: the gateway's answer to a PING."""
    frame: dict[str, Any] = {"Type": "PONG", "Id": frame_id}
    if request_id is not None:
        frame["RequestId"] = request_id
    frame["SendTime"] = iso_ms(send_ms)
    return _encode(frame)


def delete_message_attributes(message_id: str, reason: str | None) -> dict[str, str]:
    # The JS SDK reads only the deprecated "MessageID"; the docs name "MessageId". Send both.
    attributes = {"MessageId": message_id, "MessageID": message_id}
    if reason:
        attributes["Reason"] = reason
    return attributes


def disconnect_user_attributes(user_id: str, reason: str | None) -> dict[str, str]:
    attributes = {"UserId": user_id}
    if reason:
        attributes["Reason"] = reason
    return attributes


def history_frame(*, frame_id: str, request_id: str | None, messages: list[bytes], gap: bool) -> bytes:
    """parley extension: past MESSAGE frames (exactly as delivered), oldest first. ``Gap`` is true
    when the requested ``After`` message is no longer kept, so some messages may be missing."""
    head: dict[str, Any] = {"Type": "HISTORY", "Id": frame_id}
    if request_id is not None:
        head["RequestId"] = request_id
    head["Gap"] = gap
    # The stored frames are JSON already: splice them in rather than decode and re-encode.
    return _encode(head)[:-1] + b',"Messages":[' + b",".join(messages) + b"]}"


def presence_frame(
    *, frame_id: str, request_id: str | None, users: list[dict[str, Any]], connection_count: int, next_after: str
) -> bytes:
    """parley extension: who is in the room now. ``Users`` are ``{UserId, Attributes,
    Connections}`` in UserId order; ``ConnectionCount`` counts every live connection in the room;
    ``NextAfter`` (when present) is the ``After`` that reads the next page."""
    frame: dict[str, Any] = {"Type": "PRESENCE", "Id": frame_id}
    if request_id is not None:
        frame["RequestId"] = request_id
    frame["Users"] = users
    frame["ConnectionCount"] = connection_count
    if next_after:
        frame["NextAfter"] = next_after
    return _encode(frame)


def error_frame(*, frame_id: str, request_id: str | None, code: int, message: str) -> bytes:
    frame: dict[str, Any] = {"Type": "ERROR", "Id": frame_id}
    if request_id is not None:
        frame["RequestId"] = request_id
    frame["ErrorCode"] = code
    frame["ErrorMessage"] = message
    return _encode(frame)


@dataclass(slots=True, frozen=True)
class ErrorFrame:
    """An ERROR frame read back (a protocol front translates the routers' errors into its own)."""

    request_id: str | None
    code: int
    message: str


def read_error_frame(frame: bytes) -> ErrorFrame | None:
    """The ERROR in ``frame`` as :func:`error_frame` wrote it; None for any other frame."""
    shape = json.loads(frame)
    if shape.get("Type") != "ERROR":
        return None
    return ErrorFrame(shape.get("RequestId"), int(shape.get("ErrorCode", 500)), str(shape.get("ErrorMessage", "")))
