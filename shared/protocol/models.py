"""Resource records shared by the control plane (which writes them) and the data plane (which
reads them): rooms and logging configurations, in the field names of botocore's ivschat model.

``to_record``/``from_record`` are the Store form; ``to_api``/``summary`` are the response shapes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shared.protocol.timestamps import iso_ms

DEFAULT_MAX_MESSAGE_RATE = 10
DEFAULT_MAX_MESSAGE_LENGTH = 500
DEFAULT_FALLBACK_RESULT = "ALLOW"
DEFAULT_HISTORY_MAX_MESSAGES = 50  # parley extension: recent messages kept per room
DEFAULT_HISTORY_MAX_AGE_SECONDS = 86_400


@dataclass(slots=True)
class Room:
    id: str
    arn: str
    name: str = ""
    create_ms: int = 0
    update_ms: int = 0
    maximum_message_rate_per_second: int = DEFAULT_MAX_MESSAGE_RATE
    maximum_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    review_uri: str = ""
    review_fallback: str = DEFAULT_FALLBACK_RESULT
    tags: dict[str, str] = field(default_factory=dict)
    logging_configuration_identifiers: list[str] = field(default_factory=list)
    # parley extensions (UpdateRoomExtensions); never part of IVS's response shapes
    history_max_messages: int = DEFAULT_HISTORY_MAX_MESSAGES
    history_max_age_seconds: int = DEFAULT_HISTORY_MAX_AGE_SECONDS
    presence_events: bool = False  # parley:USER_JOINED / parley:USER_LEFT events to the room
    members_only: bool = False  # only members (AddRoomMembers) get tokens, connect and act
    approval_required: bool = False  # new connections wait for a moderator's APPROVE_CONNECTION
    # direct messages are also kept per recipient (shared.features.inbox), for offline delivery
    inbox_per_user: bool = False
    # every message is also kept in each member's one log over such rooms (shared.features.inbox)
    member_log: bool = False

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Room:
        return cls(**record)

    def _handler(self) -> dict[str, str]:
        return {"uri": self.review_uri, "fallbackResult": self.review_fallback}

    def summary(self) -> dict[str, Any]:
        """``RoomSummary``: no message limits."""
        return {
            "arn": self.arn,
            "id": self.id,
            "name": self.name,
            "messageReviewHandler": self._handler(),
            "createTime": iso_ms(self.create_ms),
            "updateTime": iso_ms(self.update_ms),
            "tags": dict(self.tags),
            "loggingConfigurationIdentifiers": list(self.logging_configuration_identifiers),
        }

    def to_api(self) -> dict[str, Any]:
        """The ``Room`` shape returned by CreateRoom, GetRoom and UpdateRoom."""
        return {
            **self.summary(),
            "maximumMessageRatePerSecond": self.maximum_message_rate_per_second,
            "maximumMessageLength": self.maximum_message_length,
        }


@dataclass(slots=True)
class LoggingConfiguration:
    id: str
    arn: str
    name: str = ""
    create_ms: int = 0
    update_ms: int = 0
    destination: dict[str, dict[str, str]] = field(default_factory=dict)  # exactly one key
    state: str = "ACTIVE"
    tags: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LoggingConfiguration:
        return cls(**record)

    def to_api(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "id": self.id,
            "name": self.name,
            "createTime": iso_ms(self.create_ms),
            "updateTime": iso_ms(self.update_ms),
            "destinationConfiguration": {k: dict(v) for k, v in self.destination.items()},
            "state": self.state,
            "tags": dict(self.tags),
        }
