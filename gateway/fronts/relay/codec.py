"""Seed 001 (relay) wire format, pure: client frame in → request or error; parley frame → bytes.

Owns the relay JSON shapes (``{"from":"system",…}``, ``{"from":<id>,"data":…}``), how ``data``
(a string or any JSON value) rides losslessly in an IVS message's ``Content``, and the
translation of the router's IVS frames (MESSAGE, the approval events, ERROR) into relay frames.
Must not: do I/O, read clocks or hold connection state (``server.py`` does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.protocol import frames

SYSTEM = "system"
# a message whose data is not a plain string carries it JSON-encoded, marked by this attribute
DATA_ATTRIBUTE = "relay:data"
DATA_JSON = "json"
MAX_ID_LENGTH = 128  # a relay id is a uuid; anything much longer cannot name a connection
MAX_KEY_LENGTH = 1024


class RelayError(Exception):
    """A frame refused: answered with :func:`error` and the connection stays open."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True, frozen=True)
class Ping:
    pass


@dataclass(slots=True, frozen=True)
class Send:
    to: str  # "all" or a connection id
    content: str  # the IVS Content carrying ``data``
    attributes: dict[str, str] | None  # the marker, when ``data`` is not a plain string


@dataclass(slots=True, frozen=True)
class BecomeAdmin:
    key: str


@dataclass(slots=True, frozen=True)
class Approve:
    connection_id: str


Request = Ping | Send | BecomeAdmin | Approve


def parse(data: str | bytes) -> Request:
    """One client frame: the plain string ``ping`` or a JSON object with ``to``."""
    if isinstance(data, bytes):
        try:
            data = data.decode()
        except UnicodeDecodeError:
            raise RelayError("frames must be UTF-8 text") from None
    if data.strip() == "ping":
        return Ping()
    try:
        body = _loads(data)
    except (ValueError, RecursionError):
        raise RelayError('invalid JSON: send "ping" or an object with "to"') from None
    if not isinstance(body, dict):
        raise RelayError('frames must be a JSON object with "to"')
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise RelayError('"to" must be "all", "system" or a connection id')
    if to == SYSTEM:
        return _system(body)
    if len(to) > MAX_ID_LENGTH:
        raise RelayError(f'"to" must be at most {MAX_ID_LENGTH} characters')
    if "data" not in body:
        raise RelayError('"data" is required')
    content, attributes = encode_data(body["data"])
    return Send(to, content, attributes)


def _system(body: dict[str, Any]) -> Request:
    event = body.get("event")
    if event == "admin":
        key = body.get("key")
        if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
            raise RelayError('"key" must be a string')
        return BecomeAdmin(key)
    if event == "approved":
        target = body.get("id")
        if not isinstance(target, str) or not target or len(target) > MAX_ID_LENGTH:
            raise RelayError('"id" must be a connection id')
        return Approve(target)
    raise RelayError('"event" must be "admin" or "approved"')


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _loads(text: str) -> Any:
    """Strict JSON. Python's ``json`` also reads ``NaN``, ``Infinity`` and ``-Infinity`` and writes them back as
    such, which is no JSON: a relay client's ``JSON.parse`` would fail on the frame that carries them."""
    return json.loads(text, parse_constant=_not_json)


def encode_data(data: Any) -> tuple[str, dict[str, str] | None]:
    """``data`` as IVS Content: a non-empty string as is (IVS clients read it as text), anything
    else JSON-encoded with the marker attribute."""
    if isinstance(data, str) and data:
        return data, None
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")), {DATA_ATTRIBUTE: DATA_JSON}


def decode_data(content: str, attributes: dict[str, Any] | None) -> Any:
    """The inverse of :func:`encode_data`; an IVS client's message (no marker, or marked but not strict JSON) is its
    text."""
    if attributes and attributes.get(DATA_ATTRIBUTE) == DATA_JSON:
        try:
            return _loads(content)
        except (ValueError, RecursionError):
            return content
    return content


# --- server → client -------------------------------------------------------------------------
def _encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()


def welcome(connection_id: str) -> bytes:
    return _encode({"from": SYSTEM, "id": connection_id})


def pong() -> bytes:
    return _encode({"system": "pong"})


def admin_status(success: bool, error_message: str = "") -> bytes:
    frame: dict[str, Any] = {"from": SYSTEM, "event": "admin", "status": "success" if success else "failed"}
    if error_message:
        frame["error"] = error_message
    return _encode(frame)


def approved(connection_id: str, success: bool, error_message: str = "") -> bytes:
    status = "success" if success else "failed"
    frame: dict[str, Any] = {"from": SYSTEM, "event": "approved", "id": connection_id, "status": status}
    if error_message:
        frame["error"] = error_message
    return _encode(frame)


def new_connection(connection_id: str) -> bytes:
    return _encode({"from": SYSTEM, "new_id": connection_id})


def error(message: str) -> bytes:
    return _encode({"from": SYSTEM, "error": message})


@dataclass(slots=True, frozen=True)
class Outgoing:
    """A parley frame in relay form: ``payload`` to the audience except ``sender``'s connections."""

    payload: bytes
    sender: str = ""


def shown_sender(user_id: str) -> str:
    """The ``from`` of a user's message. Relay clients take ``"from":"system"`` for the server, so
    an IVS user whose id is ``system`` is shown as ``ivs:system`` (relay connection ids are UUIDs)."""
    return f"ivs:{user_id}" if user_id == SYSTEM else user_id


def translate(frame: bytes) -> Outgoing | None:
    """A router-encoded IVS frame → relay bytes; None for what relay clients do not see
    (IVS events such as deletions, presence, typing)."""
    body = json.loads(frame)
    kind = body.get("Type")
    if kind == "MESSAGE":
        sender = str(body.get("Sender", {}).get("UserId", ""))
        data = decode_data(str(body.get("Content", "")), body.get("Attributes"))
        return Outgoing(_encode({"from": shown_sender(sender), "data": data}), sender)
    if kind == "EVENT":
        attributes = body.get("Attributes") or {}
        name = body.get("EventName")
        if name == frames.EVENT_CONNECTION_PENDING:
            return Outgoing(new_connection(str(attributes.get("ConnectionId", ""))))
        if name == frames.EVENT_CONNECTION_APPROVED:
            return Outgoing(approved(str(attributes.get("ConnectionId", "")), True))
        return None
    if kind == "ERROR":
        return Outgoing(error(str(body.get("ErrorMessage", "request failed"))))
    return None


def translate_error(frame: bytes) -> bytes:
    """A router's IVS ERROR frame for one connection (rate, length, review) → relay error."""
    try:
        message = str(json.loads(frame).get("ErrorMessage", "request failed"))
    except (ValueError, AttributeError):
        message = "request failed"
    return error(message)
