"""Which local connections receive which rooms, for fronts whose users each receive several
rooms at once (groupschat groups, plic rooms), and the room-channel subscriptions that follows.

Owns: registering a connection (and its ``ConcurrentChatConnections`` under the front's
``Protocol``), adding and dropping rooms per connection, subscribing to a room's channel while
any local connection receives it, and forgetting a connection on every way out.

Must not: encode frames or decide who may receive a room (each front's hub and the router do).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, Protocol, TypeVar

import structlog

from shared import metrics
from shared.engine.fanout import Subscription
from shared.protocol.envelope import ClientProtocol

log = structlog.get_logger("gateway.fronts")


class RoomReceiver(Protocol):
    connection_id: str
    user_id: str
    rooms: set[str]  # parley room ids this connection receives


Conn = TypeVar("Conn", bound=RoomReceiver)


class RoomHub(Generic[Conn]):
    def __init__(self, protocol: ClientProtocol) -> None:
        self.protocol = protocol
        self.subscription: Subscription | None = None
        self._by_id: dict[str, Conn] = {}
        self._users: dict[str, set[Conn]] = {}
        self._rooms: dict[str, set[Conn]] = {}  # parley room id → local connections receiving it
        self._tasks: set[asyncio.Task[object]] = set()  # follow-up work, referenced until done

    def connections(self) -> list[Conn]:
        return list(self._by_id.values())

    def register(self, conn: Conn) -> None:
        """Before its rooms are read, so a membership notice meanwhile already finds it."""
        self._by_id[conn.connection_id] = conn
        metrics.connection_opened(self.protocol)
        self._users.setdefault(conn.user_id, set()).add(conn)

    async def add_room(self, conn: Conn, room_id: str) -> bool:
        """``conn`` receives ``room_id`` from now on; False if it already did or has left."""
        if room_id in conn.rooms or conn.connection_id not in self._by_id:
            return False
        conn.rooms.add(room_id)
        room = self._rooms.get(room_id)
        if room is None:
            self._rooms[room_id] = {conn}
            assert self.subscription is not None
            await self.subscription.add_room(room_id)
        else:
            room.add(conn)
        return True

    async def drop_room(self, conn: Conn, room_id: str) -> None:
        conn.rooms.discard(room_id)
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.discard(conn)
        if not room:
            del self._rooms[room_id]
            self.room_dropped(room_id)
            if self.subscription is not None:
                await self.subscription.remove_room(room_id)

    def room_dropped(self, room_id: str) -> None:
        """No local connection receives ``room_id`` any more (a hook for per-room state)."""

    async def leave(self, conn: Conn) -> None:
        if self._by_id.pop(conn.connection_id, None) is not None:
            metrics.connection_closed(self.protocol)
        users = self._users.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self._users[conn.user_id]
        for room_id in list(conn.rooms):
            await self.drop_room(conn, room_id)

    # --- follow-up work started from the fan-out callbacks (which must not block) ------------
    def spawn(self, work: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("front follow-up failed", protocol=self.protocol, error=type(task.exception()).__name__)
