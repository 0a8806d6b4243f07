"""The seam between the router and message review: what a review decides, and who decides it.

The router asks a :class:`Reviewer` about every SendMessage in a room with a
``messageReviewHandler``; the ``reviewer`` package implements it (in-process for ``parley dev``,
over the bus to ``parley reviewer`` processes in distributed mode). A reviewer never raises:
whatever goes wrong, it answers the room's ``fallbackResult``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass

import msgpack

from shared.protocol.envelope import ActionEnvelope
from shared.protocol.models import Room


@dataclass(slots=True)
class Verdict:
    allow: bool
    content: str  # what is delivered when allowed (the handler may have replaced it)
    attributes: dict[str, str] | None
    reason: str = ""  # the handler's Attributes.Reason on DENY, for the sender's ERROR 406

    # Wire form (reviewer → router, msgpack array in field order), like shared/protocol/envelope.py.
    def encode(self) -> bytes:
        return msgpack.packb([self.allow, self.content, self.attributes, self.reason])

    @classmethod
    def decode(cls, data: bytes) -> Verdict:
        allow, content, attributes, reason = msgpack.unpackb(data)
        return cls(bool(allow), content, attributes, reason)


@dataclass(slots=True)
class ReviewRequest:
    """Router → reviewer: one message to review, with what the reviewer needs to decide alone
    (the handler, the room's fallback and length limit) so it never reads the Store."""

    uri: str
    fallback_result: str  # ALLOW | DENY
    maximum_message_length: int
    message_id: str  # the MESSAGE's Id-to-be (spec §8: reused as the delivered frame's Id)
    room_arn: str
    content: str
    attributes: dict[str, str] | None
    user_id: str
    user_attributes: dict[str, str] | None
    ip: str
    # Wall-clock (``time.time()``) instant the router stops waiting; 0 = none. A reviewer drops a
    # request past it unreviewed (nobody would read the verdict). Routers and reviewers need
    # synchronised clocks (NTP), as for the frames' SendTime.
    deadline: float = 0.0

    @classmethod
    def of(cls, room: Room, action: ActionEnvelope, deadline: float = 0.0) -> ReviewRequest:
        return cls(
            room.review_uri,
            room.review_fallback,
            room.maximum_message_length,
            action.frame_id,
            room.arn,
            action.content,
            action.attributes,
            action.user_id,
            action.user_attributes,
            action.ip,
            deadline,
        )

    def fallback(self, reason: str = "") -> Verdict:
        """Same rule as :func:`fallback`, for a reviewer that has the request but not the room."""
        return Verdict(self.fallback_result == "ALLOW", self.content, self.attributes, reason)

    def encode(self) -> bytes:
        return msgpack.packb([getattr(self, name) for name in self.__slots__])

    @classmethod
    def decode(cls, data: bytes) -> ReviewRequest:
        return cls(*msgpack.unpackb(data))


# A room batch travels as ONE bus request: a msgpack array of request arrays (each in the field
# order above), answered by one array holding, in the same order, a verdict array or nil (dropped
# past its deadline). A single request (an array whose first item is the URI string) is still
# understood, and answered with a single Verdict.
def encode_requests(requests: list[ReviewRequest]) -> bytes:
    return msgpack.packb([[getattr(request, name) for name in request.__slots__] for request in requests])


def decode_requests(data: bytes) -> tuple[list[ReviewRequest], bool]:
    """The requests in a batch or single request, and whether it was a batch."""
    value = msgpack.unpackb(data)
    if not isinstance(value, list):
        raise ValueError("a review request is a msgpack array")
    if value and not isinstance(value[0], list):
        return [ReviewRequest(*value)], False
    return [ReviewRequest(*fields) for fields in value], True


def encode_verdicts(verdicts: list[Verdict | None]) -> bytes:
    return msgpack.packb([None if v is None else [v.allow, v.content, v.attributes, v.reason] for v in verdicts])


def decode_verdicts(data: bytes) -> list[Verdict | None]:
    return [
        None if fields is None else Verdict(bool(fields[0]), fields[1], fields[2], fields[3])
        for fields in msgpack.unpackb(data)
    ]


def fallback(room: Room, action: ActionEnvelope, reason: str = "") -> Verdict:
    """The room's ``fallbackResult``: an ALLOW fallback delivers the original message."""
    return Verdict(room.review_fallback == "ALLOW", action.content, action.attributes, reason)


class Reviewer(ABC):
    @abstractmethod
    async def review(self, room: Room, action: ActionEnvelope) -> Verdict:
        """Decide one message within the review budget; never raise."""

    async def review_many(self, room: Room, actions: list[ActionEnvelope]) -> list[Verdict]:
        """Decide a room batch's messages (verdicts in the same order); never raise. The default
        reviews them one by one, concurrently; a transport may send them together."""
        return list(await asyncio.gather(*(self.review(room, action) for action in actions)))


class FallbackReviewer(Reviewer):
    """Used where no reviewer is wired: every review answers the room's fallback result."""

    async def review(self, room: Room, action: ActionEnvelope) -> Verdict:
        return fallback(room, action, "no reviewer available")
