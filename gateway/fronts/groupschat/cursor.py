"""A groups-chat user's delivered-up-to cursor, and when a connection saves it. Pure: no I/O.

A cursor is ``(ms, ids)``: every log event stamped at or before ``ms - SLACK_MS`` was delivered,
and so were ``ids`` (event id → stamp), the events delivered with a stamp within ``SLACK_MS`` of
``ms``. The slack is for events stamped before one already delivered that reach the user's log
later (two routers deciding at once, a router's and a front's clock): method 20 still sends them,
and never sends again what ``ids`` holds.

A connection saves its cursor ``every_events`` log events after the last save, or ``every_ms``
after the first unsaved one, whichever comes first (:class:`SaveSchedule`); a front that dies
without closing its connections re-delivers at most those unsaved events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SLACK_MS = 5000
MAX_IDS = 512  # the newest ids kept in the slack window (older ones may then come twice)


@dataclass(slots=True, frozen=True)
class Cursor:
    ms: int = 0
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def floor(self) -> int:
        """Log events stamped at or before this were delivered."""
        return max(self.ms - SLACK_MS, 0)

    def to_record(self) -> dict[str, Any]:
        return {"ms": self.ms, "ids": dict(self.ids)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> Cursor:
        if record is None:
            return cls()
        return cls(int(record["ms"]), {str(k): int(v) for k, v in dict(record.get("ids") or {}).items()})


def cursor_of(sent: Mapping[str, int], high: int) -> Cursor:
    """The cursor of a connection that sent ``sent`` (event id → stamp), the newest stamped ``high``."""
    recent = sorted(((stamp, event_id) for event_id, stamp in sent.items() if stamp > high - SLACK_MS), reverse=True)
    return Cursor(high, {event_id: stamp for stamp, event_id in recent[:MAX_IDS]})


class SaveSchedule:
    """When one connection saves its cursor: after ``every_events`` delivered events, or
    ``every_ms`` after the first unsaved one."""

    def __init__(self, every_events: int, every_ms: int) -> None:
        self.every_events = max(every_events, 1)
        self.every_ms = max(every_ms, 0)
        self.unsaved = 0
        self._since = 0  # when the first unsaved event was delivered

    def delivered(self, count: int, now: int) -> None:
        if count <= 0:
            return
        if not self.unsaved:
            self._since = now
        self.unsaved += count

    def due(self, now: int) -> bool:
        return self.unsaved >= self.every_events or (self.unsaved > 0 and now - self._since >= self.every_ms)

    def wait_ms(self, now: int) -> int:
        """How long until the oldest unsaved event makes a save due (0: due now)."""
        return 0 if self.due(now) else max(self._since + self.every_ms - now, 0)

    def saved(self) -> None:
        self.unsaved = 0
