"""``Records``: the control plane's resources, as JSON-able dicts kept per kind.

The control plane owns their shape (``shared.protocol.models``); the data plane only reads them
(:class:`RecordReader`): a gateway checks a room at the handshake, a router and the logger sink
cache room and logging-configuration records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any, Protocol

Record = dict[str, Any]


class RecordKind(StrEnum):
    """A kind of record; its value is the kind's part of every storage key."""

    ROOM = "room"
    LOGGING_CONFIGURATION = "logging-configuration"
    # parley extension: chat accounts of the seed protocol fronts (shared.features.accounts)
    ACCOUNT = "account"  # keyed by username
    ACCOUNT_ID = "account-id"  # userId -> {"username"}
    RELAY_APP = "relay-app"  # seed 001 front: an app name → {"room_id"} (gateway/fronts/relay)
    PLIC_ROOM = "plic-room"  # seed 004 front: int room id → parley room id, owner, apartment
    GROUPSCHAT_SESSION = "groupschat-session"  # seed 003 front: messaging-url key → user, session, expiry
    GROUPSCHAT_USER_SESSION = "groupschat-user-session"  # seed 003: user id → its one live session key
    GROUPSCHAT_CURSOR = "groupschat-cursor"  # seed 003: user id → {"ms"}: events delivered up to


class QuotaExceeded(Exception):
    def __init__(self, kind: RecordKind, limit: int) -> None:
        super().__init__(f"quota of {limit} {kind} resources reached")
        self.kind = kind
        self.limit = limit


class RecordReader(Protocol):
    """The read every component may do."""

    @abstractmethod
    async def get(self, kind: RecordKind, rid: str) -> Record | None: ...


class Records(RecordReader, ABC):
    """Every operation on records (the control plane's)."""

    @abstractmethod
    async def create(self, kind: RecordKind, rid: str, record: Record, updated_ms: int, limit: int) -> None:
        """Insert a new record; raise :class:`QuotaExceeded` if ``kind`` already has ``limit``."""

    @abstractmethod
    async def put(self, kind: RecordKind, rid: str, record: Record, updated_ms: int) -> bool:
        """Replace an existing record. False if it does not exist (it is not created)."""

    @abstractmethod
    async def delete(self, kind: RecordKind, rid: str) -> bool: ...

    @abstractmethod
    async def count(self, kind: RecordKind) -> int: ...

    @abstractmethod
    async def page(self, kind: RecordKind, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str, Record]]:
        """Up to ``limit`` records as ``(updated_ms, id, record)``, newest update first, strictly
        after the ``(updated_ms, id)`` cursor in that order."""
