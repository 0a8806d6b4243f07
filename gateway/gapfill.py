"""Filling a gateway's fan-out gap from room history after its pub/sub subscription was lost.

Redis pub/sub is at most once: what a room published while the subscriber connection was down
never reaches this gateway. When the subscription is back (``Fanout.subscribe``'s
``on_resubscribed``), every room with local connections is paused (its live deliveries wait),
its newest history is read once the channels are confirmed — the router writes history before
it publishes, so anything not yet in the read arrives live — and the missed messages are
delivered before the waiting live ones, each once (``gateway.gaptrail``). Bounded per room by
``gap_fill_max_messages`` and ``gap_fill_max_age_seconds``. Only messages are kept in history;
lost events (DeleteMessage, DisconnectUser, SendEvent, presence) are not recovered.

Owns the catch-up task; delivery and the pause are ``gateway.fanout``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import structlog

from gateway.fanout import RoomFanout
from gateway.gaptrail import Fill, RoomTrail, Unrecovered, plan_fill
from gateway.ports import GatewayStore
from shared import metrics
from shared.config import Settings
from shared.engine.records import RecordKind
from shared.protocol.models import Room

log = structlog.get_logger(__name__)

FILL_TIMEOUT = 10.0  # one catch-up must not hold a room's live deliveries longer than this


class GapFill:
    def __init__(self, fanout: RoomFanout, store: GatewayStore, settings: Settings) -> None:
        self.fanout = fanout
        self.store = store
        self.max_messages = settings.gap_fill_max_messages
        self.max_age_seconds = settings.gap_fill_max_age_seconds
        self._task: asyncio.Task[None] | None = None

    def on_resubscribed(self, confirmed: Awaitable[None]) -> None:
        """The ``on_resubscribed`` listener: pause now, before the new subscription delivers."""
        pause, trails = self.fanout.pause_rooms()
        self._task = asyncio.create_task(self._fill(pause, trails, confirmed, self._task), name="gap-fill")

    async def wait(self) -> None:
        """Until the latest catch-up is done (tests, shutdown)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def _fill(
        self,
        pause: int,
        trails: dict[str, RoomTrail],
        confirmed: Awaitable[None],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:  # one catch-up at a time; this one's pause took over its rooms
            with contextlib.suppress(Exception):
                await previous
        with contextlib.suppress(Exception):  # unconfirmed: fill anyway; rooms must not stay paused
            await confirmed
        await asyncio.gather(*(self._fill_room(room_id, trail, pause) for room_id, trail in trails.items()))

    async def _fill_room(self, room_id: str, trail: RoomTrail, pause: int) -> None:
        fill = Fill([], Unrecovered.ERROR)
        try:
            fill = await asyncio.wait_for(self._plan(room_id, trail), FILL_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the room must be resumed whatever happened
            log.warning("gateway.gap_fill_failed", room_id=room_id, error_type=type(exc).__name__, error=str(exc))
        finally:
            filled = self.fanout.resume(room_id, pause, trail, fill.entries)
        metrics.FANOUT_GAP_RECOVERED.inc(filled)
        if fill.unrecovered is not None:
            metrics.FANOUT_GAP_UNRECOVERED.labels(fill.unrecovered).inc()
        if filled or fill.unrecovered is not None:
            log.info("gateway.gap_filled", room_id=room_id, recovered=filled, unrecovered=fill.unrecovered)

    async def _plan(self, room_id: str, trail: RoomTrail) -> Fill:
        record = await self.store.records.get(RecordKind.ROOM, room_id)
        room = None if record is None else Room.from_record(record)
        if room is None or room.history_max_messages <= 0 or self.max_messages <= 0:
            return Fill([], Unrecovered.NO_HISTORY)
        max_age_ms = min(room.history_max_age_seconds, self.max_age_seconds) * 1000
        newest = await self.store.history.latest(room_id, self.max_messages + 1, max_age_ms)
        return plan_fill(trail, list(reversed(newest)), self.max_messages)
