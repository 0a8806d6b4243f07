"""Presence sweeping (a parley extension): who emits ``parley:USER_LEFT`` for a dead gateway.

Every router runs this loop. Once a second one of them wins a short Store claim and runs
``Presence.sweep``, which atomically removes the entries of every gateway whose presence
deadline passed (no heartbeat for ``PARLEY_PRESENCE_TTL_SECONDS``) and returns the users whose
last connection in a room went with it; the sweeper publishes a ``parley:USER_LEFT`` action to
each such room's shard (rooms with ``presenceEvents``). The sweep script is atomic, so even two
sweepers at once report each departure once; the claim only saves the others the round trip.
A sweeper killed between the sweep and the publish loses those LEFT events (at most once).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from router.ports import RouterBus, RouterStore
from shared.features import presence

log = structlog.get_logger("router")

SWEEP_INTERVAL_S = 1.0
SWEEP_CLAIM = "presence-sweep"


class PresenceSweeper:
    def __init__(self, store: RouterStore, bus: RouterBus, interval: float = SWEEP_INTERVAL_S) -> None:
        self.store = store
        self.bus = bus
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="presence-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep_once()
            except Exception:
                log.warning("presence sweep failed", exc_info=True)

    async def sweep_once(self) -> int:
        """Sweep if this process wins the interval's claim; return the LEFT events published."""
        if not await self.store.marks.claim(SWEEP_CLAIM, max(int(self.interval * 1000) - 100, 100)):
            return 0
        published = 0
        departed = await self.store.presence.sweep()
        if departed:
            log.info("presence swept", users_left=len(departed))
        for room_id, user_id, attributes in departed:
            if await presence.events_enabled(self.store.records, room_id):
                action = presence.presence_action(room_id, presence.EVENT_USER_LEFT, user_id, attributes)
                await self.bus.actions.publish(action)
                published += 1
        return published
