"""Parse and validate the body of ``POST /demo/token``; nothing here touches the Store."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

# Room names also have to pass IVS's RoomName pattern ([a-zA-Z0-9-_]*, up to 128); a demo keeps them short.
ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Display names are shown to other people: letters of any script, digits, space and a little punctuation,
# nothing that could pass for markup or control characters.
DISPLAY_NAME = re.compile(r"^[\w .'-]{1,32}$")
# The page keeps the user id it was given and sends it back when it refreshes its token, so a
# reconnect stays the same chat user (and DISCONNECT_USER reaches every connection of it).
USER_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class DemoInputError(ValueError):
    """A field of the request is missing or invalid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class TokenRequest:
    room_name: str
    display_name: str
    user_id: str
    moderator: bool


def new_user_id() -> str:
    return "demo-" + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")


def _text(body: dict[str, Any], field: str, label: str, pattern: re.Pattern[str], rule: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise DemoInputError(field, f"{label} is required")
    value = value.strip()
    if not pattern.fullmatch(value):
        raise DemoInputError(field, f"{label} {rule}")
    return value


def parse_token_request(body: Any) -> TokenRequest:
    """The validated request, or :class:`DemoInputError` naming the first bad field."""
    if not isinstance(body, dict):
        raise DemoInputError("body", "The body must be a JSON object")
    room = _text(body, "room", "Room name", ROOM_NAME, "must be 1-64 characters: letters, digits, '-' or '_'")
    display = _text(
        body,
        "displayName",
        "Display name",
        DISPLAY_NAME,
        "must be 1-32 characters: letters, digits, spaces, '.', \"'\" or '-'",
    )
    user_id = body.get("userId")
    if user_id is None or user_id == "":
        user_id = new_user_id()
    elif not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise DemoInputError("userId", "User id must be 8-64 characters: letters, digits, '-' or '_'")
    moderator = body.get("moderator", False)
    if not isinstance(moderator, bool):
        raise DemoInputError("moderator", "Moderator must be true or false")
    return TokenRequest(room_name=room, display_name=display, user_id=user_id, moderator=moderator)
