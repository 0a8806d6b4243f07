"""Rooms on one gateway: which local connections are in which room, and delivering to them.

The gateway subscribes to a room's channel when its first local connection joins and
unsubscribes when the last one leaves. A :class:`~shared.envelope.RoomDelivery` carries frames
already encoded by the router; each is written to every local connection of the room with
``websockets.broadcast`` — one encoding, no task or await per socket.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Protocol

import structlog
from websockets.asyncio.server import ServerConnection, broadcast

from shared import metrics
from shared.bus import Subscription
from shared.envelope import ConnectionNotice, RoomDelivery

log = structlog.get_logger("gateway")


class Member(Protocol):
    connection_id: str
    room_id: str
    user_id: str
    websocket: ServerConnection


class RoomFanout:
    def __init__(self) -> None:
        self.subscription: Subscription | None = None
        self._rooms: dict[str, set[ServerConnection]] = {}
        self._users: dict[tuple[str, str], set[ServerConnection]] = defaultdict(set)
        self._by_id: dict[str, ServerConnection] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._by_id)

    def connections(self) -> list[ServerConnection]:
        return list(self._by_id.values())

    async def join(self, member: Member) -> None:
        ws = member.websocket
        self._by_id[member.connection_id] = ws
        self._users[(member.room_id, member.user_id)].add(ws)
        room = self._rooms.get(member.room_id)
        if room is None:
            room = self._rooms[member.room_id] = set()
            room.add(ws)
            assert self.subscription is not None
            await self.subscription.add_room(member.room_id)
        else:
            room.add(ws)

    async def leave(self, member: Member) -> None:
        ws = member.websocket
        self._by_id.pop(member.connection_id, None)
        key = (member.room_id, member.user_id)
        users = self._users.get(key)
        if users is not None:
            users.discard(ws)
            if not users:
                del self._users[key]
        room = self._rooms.get(member.room_id)
        if room is not None:
            room.discard(ws)
            if not room:
                del self._rooms[member.room_id]
                if self.subscription is not None:
                    await self.subscription.remove_room(member.room_id)

    # --- bus listeners (plain callables on the event loop) ---------------------------------
    def on_room(self, room_id: str, data: bytes) -> None:
        delivery = RoomDelivery.decode(data)
        for item in delivery.items:
            room = self._rooms.get(room_id)
            if not room:
                return
            broadcast(room, item.frame, text=True)
            metrics.MESSAGING_DELIVERIES.inc(len(room))
            metrics.DELIVERIES_BY_ACTION[item.kind].inc(len(room))
            if item.received_ms:
                metrics.SEND_TO_DELIVER_SECONDS.observe(max(time.time() * 1000 - item.received_ms, 0) / 1000)
            if item.close_user_id:
                for ws in list(self._users.get((room_id, item.close_user_id), ())):
                    self.close_soon(ws, 1000, item.close_reason)

    def on_gateway(self, data: bytes) -> None:
        notice = ConnectionNotice.decode(data)
        ws = self._by_id.get(notice.connection_id)
        if ws is None:
            return  # the connection ended meanwhile
        broadcast([ws], notice.frame, text=True)
        if notice.close_code:
            self.close_soon(ws, notice.close_code, "")

    def close_soon(self, ws: ServerConnection, code: int, reason: str) -> None:
        task = asyncio.create_task(ws.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
