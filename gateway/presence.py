"""Presence on one gateway (a parley extension): record connections, keep them alive, answer
GET_PRESENCE.

Every connection is recorded in the Store under this process's *holder* id (the gateway id plus
a random incarnation suffix, so a gateway restarted under the same ``--id`` never revives the
entries of its dead predecessor). :meth:`GatewayPresence.heartbeat` runs with the gateway's
connection-count report (every second) and extends the holder's deadline by
``PARLEY_PRESENCE_TTL_SECONDS``; if the Store says the holder had been swept as dead (this
gateway stalled for longer than the TTL), every local connection is recorded again.

A user's first connection in the room publishes ``parley:USER_JOINED``, the last one's end
``parley:USER_LEFT`` (when the room has ``presenceEvents``). Presence never blocks chat: a Store
or bus failure here is logged and the connection carries on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog
from websockets.asyncio.server import ServerConnection

from gateway.ports import GatewayBus, GatewayStore
from gateway.wire import send_frame
from shared.engine.records import Record, RecordKind
from shared.features import presence
from shared.protocol import frames
from shared.protocol.frames import ClientRequest, ErrorCode, FrameError
from shared.protocol.ids import new_id
from shared.protocol.tokens import ChatToken

log = structlog.get_logger("gateway")


@dataclass(slots=True, frozen=True)
class _Entry:
    room_id: str
    user_id: str
    attributes: dict[str, str] | None


class GatewayPresence:
    def __init__(self, store: GatewayStore, bus: GatewayBus, gateway_id: str, ttl_seconds: float) -> None:
        self.store = store
        self.bus = bus
        self.holder = f"{gateway_id}.{secrets.token_hex(4)}"
        self.ttl_ms = max(int(ttl_seconds * 1000), 2000)
        self._local: dict[str, _Entry] = {}  # connection id -> what was recorded

    async def heartbeat(self) -> None:
        if await self.store.presence.refresh(self.holder, self.ttl_ms) or not self._local:
            return
        log.warning("presence entries were swept; recording them again", connections=len(self._local))
        for connection_id, entry in list(self._local.items()):
            await self._add(connection_id, entry)

    async def stop(self) -> None:
        # Expire at once rather than forget: anything left behind is swept (and announced).
        await self.store.presence.refresh(self.holder, 1)

    async def join(self, connection_id: str, token: ChatToken, room: Record) -> None:
        """``room``: the record read at the handshake (spares a Store read per connect)."""
        entry = _Entry(token.room_id, token.user_id, token.attributes)
        self._local[connection_id] = entry
        try:
            await self._add(connection_id, entry, bool(room.get("presence_events")))
        except Exception:
            log.exception("recording presence failed", room_id=entry.room_id)

    async def _add(self, connection_id: str, entry: _Entry, announce: bool | None = None) -> None:
        first = await self.store.presence.add(
            entry.room_id, connection_id, self.holder, entry.user_id, entry.attributes
        )
        if not first:
            return
        if announce is None:
            announce = await presence.events_enabled(self.store.records, entry.room_id)
        if announce:
            await self._publish(entry, presence.EVENT_USER_JOINED)

    async def leave(self, connection_id: str) -> None:
        entry = self._local.pop(connection_id, None)
        if entry is None:
            return
        try:
            if await self.store.presence.remove(entry.room_id, connection_id) and await presence.events_enabled(
                self.store.records, entry.room_id
            ):
                await self._publish(entry, presence.EVENT_USER_LEFT)
        except Exception:
            log.exception("removing presence failed", room_id=entry.room_id)

    async def _publish(self, entry: _Entry, event_name: str) -> None:
        action = presence.presence_action(entry.room_id, event_name, entry.user_id, entry.attributes)
        await self.bus.actions.publish(action)


async def answer_presence(
    store: GatewayStore, ws: ServerConnection, room_id: str, request: ClientRequest, max_buffer: int
) -> None:
    """GET_PRESENCE: one PRESENCE frame with a page of the room's users."""
    if await store.records.get(RecordKind.ROOM, room_id) is None:
        raise FrameError(ErrorCode.NOT_FOUND, "Room not found", request.request_id)
    users, connection_count = presence.group_users(await store.presence.list(room_id))
    page, next_after = presence.page_after(users, request.after or None, request.limit)
    frame = frames.presence_frame(
        frame_id=new_id(),
        request_id=request.request_id,
        users=[
            {"UserId": user["userId"], "Attributes": user["attributes"], "Connections": user["connections"]}
            for user in page
        ],
        connection_count=connection_count,
        next_after=next_after,
    )
    send_frame(ws, frame, max_buffer)
