"""Where a gateway's fan-out stands in each room's history, and what to fill after a lost subscription.

Pure: no I/O, no clock. ``gateway.fanout`` updates a :class:`RoomTrail` on every room delivery
(cheap: a few assignments per kept message); ``gateway.gapfill`` reads the history and asks
:func:`plan_fill` which of its entries were missed. Only what the router keeps in history can
be filled: a room's SendMessage frames, not direct messages (``router.worker._record_history``),
not events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import orjson

from shared.protocol.envelope import DeliveryItem, Kind
from shared.protocol.timestamps import parse_iso

RECENT_IDS = 1024  # delivered message ids remembered per room, so nothing is filled twice
# When the last delivered message has left the history (deleted, trimmed), entries accepted more
# than this before it was delivered are taken as delivered already; a publish trails its
# acceptance by far less.
SLACK_MS = 5_000


class Unrecovered(StrEnum):
    """Why a catch-up may have left messages out (the ``reason`` of the unrecovered metric)."""

    TRIMMED = "trimmed"  # the last delivered message is no longer in history: older ones may be gone
    LIMIT = "limit"  # more missed messages than the catch-up's count bound
    NO_HISTORY = "no_history"  # the room keeps no history (or it is gone): nothing to fill from
    ERROR = "error"  # the history could not be read


def kept_in_history(item: DeliveryItem) -> bool:
    """Whether the router also wrote this item to the room's history (given it keeps one)."""
    return item.kind == Kind.SEND_MESSAGE and not item.only_users and bool(item.frame_id)


@dataclass(slots=True)
class RoomTrail:
    """One room's position in its history as this gateway delivered it."""

    since_ms: int  # when this gateway subscribed to the room (local clock)
    last_id: str = ""  # the last kept message delivered ("" none yet)
    last_ms: int = 0  # when it was delivered (local clock)
    # the last RECENT_IDS delivered ids, oldest first (a dict: ordered, and a set in one)
    _recent: dict[str, None] = field(default_factory=dict)

    def delivered(self, message_id: str, at_ms: int) -> None:
        self.last_id, self.last_ms = message_id, at_ms
        self._recent[message_id] = None
        if len(self._recent) > RECENT_IDS:
            del self._recent[next(iter(self._recent))]

    def seen(self, message_id: str) -> bool:
        return message_id in self._recent


@dataclass(slots=True, frozen=True)
class Fill:
    """Missed entries to deliver, oldest first, and why more may be missing (None: nothing)."""

    entries: list[tuple[str, bytes]]
    unrecovered: Unrecovered | None = None


def plan_fill(trail: RoomTrail, rows: list[tuple[str, bytes]], limit: int) -> Fill:
    """The missed part of ``rows``, the room's newest ``limit + 1`` history entries oldest first
    (one more than the bound, so a full page tells the bound was hit): those after the trail's
    last delivered message when it is among them; otherwise those accepted since about then (or
    since subscribing, when nothing was delivered yet). Never an entry already delivered."""
    ids = [message_id for message_id, _ in rows]
    full = len(rows) > limit
    if trail.last_id in ids:
        rows = rows[ids.index(trail.last_id) + 1 :]
        floor = None
    else:
        floor = trail.last_ms - SLACK_MS if trail.last_id else trail.since_ms
    missed = [
        (message_id, frame)
        for message_id, frame in rows
        if not trail.seen(message_id) and (floor is None or _send_ms(frame) >= floor)
    ]
    unrecovered = None
    if len(missed) > limit:  # even the oldest entry read was missed: more may be beyond it
        unrecovered = Unrecovered.LIMIT
    elif floor is not None and trail.last_id:
        unrecovered = Unrecovered.LIMIT if full else Unrecovered.TRIMMED
    return Fill(missed[-limit:] if limit else [], unrecovered)


def _send_ms(frame: bytes) -> int:
    """A history MESSAGE frame's SendTime (when its request was accepted), in epoch ms."""
    try:
        return parse_iso(orjson.loads(frame)["SendTime"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0
