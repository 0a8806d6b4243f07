"""The seam between the router and message review: what a review decides, and who decides it.

The router asks a :class:`Reviewer` about every SendMessage in a room with a
``messageReviewHandler``; the ``reviewer`` package implements it (in-process for ``parley dev``,
over the bus to ``parley reviewer`` processes in distributed mode). A reviewer never raises:
whatever goes wrong, it answers the room's ``fallbackResult``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from shared.envelope import ActionEnvelope
from shared.models import Room


@dataclass(slots=True)
class Verdict:
    allow: bool
    content: str  # what is delivered when allowed (the handler may have replaced it)
    attributes: dict[str, str] | None
    reason: str = ""  # the handler's Attributes.Reason on DENY, for the sender's ERROR 406


def fallback(room: Room, action: ActionEnvelope, reason: str = "") -> Verdict:
    """The room's ``fallbackResult``: an ALLOW fallback delivers the original message."""
    return Verdict(room.review_fallback == "ALLOW", action.content, action.attributes, reason)


class Reviewer(ABC):
    @abstractmethod
    async def review(self, room: Room, action: ActionEnvelope) -> Verdict:
        """Decide one message within the review budget; never raise."""


class FallbackReviewer(Reviewer):
    """Used where no reviewer is wired: every review answers the room's fallback result."""

    async def review(self, room: Room, action: ActionEnvelope) -> Verdict:
        return fallback(room, action, "no reviewer available")
