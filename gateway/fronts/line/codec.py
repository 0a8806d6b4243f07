"""Seed 000's wire protocol, pure: bytes in → commands, replies out → bytes. No I/O, no clock.

Owns: splitting the byte stream into lines (``\\n`` or ``\\r\\n``, at most ``MAX_LINE`` bytes; a
longer line is skipped to its end and reported once), parsing ``COMMAND PARAMETER1 PARAMETER2``,
and every reply text exactly as the seed document shows it, each ending with an empty line.

Must not: know accounts, sessions or the bus (``server``), or decide room rules (the router).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_LINE = 64 * 1024  # bytes, without the line ending
END = b"\r\n\r\n"  # every reply ends with an empty line
USERDETAIL_WIDTH = 50  # a cell of `show`'s table is cut here with "...", as the seed's table shows


class Name(StrEnum):
    AUTH = "auth"
    SEND = "send"
    INBOX = "inbox"
    SHOW = "show"
    LOGOUT = "logout"


@dataclass(slots=True, frozen=True)
class Command:
    name: Name
    args: tuple[str, ...] = ()  # auth: (username, password); send: (username_to, message)


@dataclass(slots=True, frozen=True)
class TooLong:
    """A line over ``MAX_LINE`` bytes was skipped."""


@dataclass(slots=True, frozen=True)
class Bad:
    """A line that is no command; ``reason`` is the reply's text after ``Error, ``."""

    reason: str


# --- the fixed replies (the seed's texts) ---------------------------------------------------
NOT_AUTHORIZED = "Error, not authorized"
NO_SUCH_USER = "Error, User Tidak Ada"
WRONG_PASSWORD = "Error, Password Salah"
RECIPIENT_NOT_FOUND = "Error, User Tidak Ditemukan"
UNKNOWN_COMMAND = "Protocol Tidak Benar"  # not in the seed: its reference server's wording


class LineSplitter:
    """Bytes → complete lines, with bounded memory: a partial line is kept only up to MAX_LINE."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._skipping = False  # inside a too-long line, already reported

    def feed(self, data: bytes) -> list[bytes | TooLong]:
        out: list[bytes | TooLong] = []
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.max_line + 1:  # +1: a "\r" may still end it in time
                    if not self._skipping:
                        out.append(TooLong())
                    self._skipping = True
                    self._buffer.clear()
                return out
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            out.append(TooLong() if len(line) > self.max_line else line)


def parse(line: bytes) -> Command | Bad | None:
    """One line → a command, a :class:`Bad` line, or None for a blank line (ignored)."""
    try:
        text = line.decode()
    except UnicodeDecodeError:
        return Bad("lines must be UTF-8")
    words = text.split()
    if not words:
        return None
    try:
        name = Name(words[0].lower())
    except ValueError:
        return Bad(UNKNOWN_COMMAND)
    if name is Name.AUTH:
        if len(words) != 3:
            return Bad("usage: auth [username] [password]")
        return Command(name, (words[1], words[2]))
    if name is Name.SEND:
        parts = text.strip().split(maxsplit=2)
        if len(parts) < 3:
            return Bad("usage: send [username_to] [messages]")
        return Command(name, (parts[1], parts[2].strip()))
    return Command(name)  # inbox, show, logout take no parameters (extra words are ignored)


# --- replies ---------------------------------------------------------------------------------
def reply(text: str) -> bytes:
    return text.encode() + END


def error(reason: str) -> bytes:
    return reply(f"Error, {reason}")


def logged_in(username: str, token: str) -> bytes:
    return reply(f"username {username} logged in, token {token}")


def message_sent(username_to: str) -> bytes:
    return reply(f"message sent to {username_to}")


def logged_out(token: str) -> bytes:
    return reply(f"Logout berhasil dilakukan dengan session id :\n{token}")


def message_text(content: str) -> str:
    """The inbox ``msg`` of a message, shaped as the seed's example shows (``" woi \\r\\n"``)."""
    return f" {content} \r\n"


@dataclass(slots=True, frozen=True)
class Received:
    """One inbox entry, from the delivered IVS MESSAGE frame."""

    sender_username: str
    sender_name: str
    content: str


def received(frame: bytes) -> Received | None:
    """The inbox entry of a delivered direct MESSAGE frame (None if it is not one)."""
    try:
        parsed: Any = json.loads(frame)
        sender = parsed["Sender"]
        attributes = sender.get("Attributes") or {}
        username = str(attributes.get("username") or sender["UserId"])
        return Received(username, str(attributes.get("nama") or username), str(parsed["Content"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def inbox(entries: Iterable[Received], recipient_name: str) -> bytes:
    """``{"<sender>": [{"msg_from", "msg_to", "msg"}, ...]}`` grouped by sender, arrival order."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for entry in entries:
        grouped.setdefault(entry.sender_username, []).append(
            {"msg_from": entry.sender_name, "msg_to": recipient_name, "msg": message_text(entry.content)}
        )
    return reply(json.dumps(grouped))


@dataclass(slots=True, frozen=True)
class Online:
    token: str
    username: str
    detail: dict[str, str]


def show(online: list[Online]) -> bytes:
    """``Daftar User Online`` and a table as the seed prints it: one column per session token, rows
    ``username`` and ``userdetail`` (the account's attributes, cut at 50 characters)."""
    rows = [
        ["", *(user.token for user in online)],
        ["username", *(user.username for user in online)],
        ["userdetail", *(_cell(repr(user.detail)) for user in online)],
    ]
    label = max(len(row[0]) for row in rows)
    widths = [max(len(row[column]) for row in rows) for column in range(1, len(rows[0]))]
    lines = [
        "  ".join([row[0].ljust(label), *(cell.rjust(width) for cell, width in zip(row[1:], widths, strict=True))])
        for row in rows
    ]
    return reply("Daftar User Online\n" + "\n".join(line.rstrip() for line in lines))


def _cell(text: str) -> str:
    return text if len(text) <= USERDETAIL_WIDTH else text[: USERDETAIL_WIDTH - 3] + "..."
