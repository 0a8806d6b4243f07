"""Connection lifecycle extensions (parley), per gateway:

- **PING → PONG**, answered here; the IVS SDK never sends PING, so it never sees a PONG.
- **Idle timeout** (``PARLEY_IDLE_TIMEOUT`` seconds, 0 = off): a connection that sent no frame
  and answered no WebSocket ping for that long is closed with 4003. Off by default because IVS
  SDK clients send nothing while idle (they do answer pings, which counts as activity).
- **Approval** (room extension ``approvalRequired``): a new connection that is not a moderator
  (token without DISCONNECT_USER) is pending: it receives nothing and may only PING. The room's
  moderators get ``parley:CONNECTION_PENDING``; ``APPROVE_CONNECTION`` (or the control plane's
  ApproveConnection) publishes ``parley:CONNECTION_APPROVED`` on the room's channel, and the
  gateway holding the connection, whichever it is, admits it. Not approved within
  ``PARLEY_APPROVAL_TIMEOUT`` seconds: closed with 4004.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.protocol import Event

from gateway.wire import send_frame
from shared.clock import now_ms
from shared.features import approval
from shared.protocol import frames
from shared.protocol.closecodes import CloseCode
from shared.protocol.frames import Action, ClientRequest
from shared.protocol.ids import new_id

if TYPE_CHECKING:
    from gateway.server import Connection, Gateway

log = structlog.get_logger("gateway")

MODERATOR_CAPABILITY = "DISCONNECT_USER"


class TrackedConnection(ServerConnection):
    """A server connection that remembers when the client last sent anything: a data frame, a
    pong to the keepalive ping, a ping or a close (``loop.time()`` seconds)."""

    last_activity: float = 0.0

    def process_event(self, event: Event) -> None:
        self.last_activity = self.loop.time()
        super().process_event(event)


@dataclass(slots=True)
class _State:
    conn: Connection
    idle: asyncio.TimerHandle | None = None
    approval: asyncio.TimerHandle | None = None


class Lifecycle:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._states: dict[ServerConnection, _State] = {}
        gateway.fanout.on_approved = self._approved

    # --- hooks called by the gateway around one connection ------------------------------------
    async def before_join(self, conn: Connection) -> None:
        """Moderator or pending? Decided before the connection joins its room's fan-out, so no
        frame reaches a pending connection."""
        fanout = self.gateway.fanout
        ws = conn.websocket
        self._states[ws] = _State(conn)
        if MODERATOR_CAPABILITY in conn.session.token.capabilities:
            fanout.add_moderator(conn.room_id, ws)
            return
        if conn.room.get("approval_required"):
            conn.session.pending = True
            fanout.set_pending(conn.room_id, ws)

    async def joined(self, conn: Connection) -> None:
        ws = conn.websocket
        state = self._states[ws]
        loop = asyncio.get_running_loop()
        settings = self.gateway.settings
        if settings.idle_timeout > 0:
            if isinstance(ws, TrackedConnection):
                ws.last_activity = loop.time()
            state.idle = loop.call_later(settings.idle_timeout, self._check_idle, ws)
        if conn.session.pending:
            if settings.approval_timeout > 0:  # 0: no deadline, it waits until approved or gone
                state.approval = loop.call_later(settings.approval_timeout, self._not_approved, ws)
            token = conn.session.token
            delivery = approval.pending_delivery(
                conn.room_id, conn.connection_id, token.user_id, token.attributes, now_ms()
            )
            await self.gateway.bus.fanout.publish_rooms([(conn.room_id, delivery)])

    def left(self, ws: ServerConnection) -> None:
        state = self._states.pop(ws, None)
        if state is None:
            return
        for timer in (state.idle, state.approval):
            if timer is not None:
                timer.cancel()

    # --- requests the gateway answers itself ------------------------------------------------
    async def answer(self, ws: ServerConnection, room_id: str, request: ClientRequest) -> None:
        if request.action is Action.PING:
            frame = frames.pong_frame(frame_id=new_id(), request_id=request.request_id, send_ms=now_ms())
            send_frame(ws, frame, self.gateway.fanout.max_send_buffer)
        elif request.action is Action.APPROVE_CONNECTION:
            delivery = approval.approved_delivery(room_id, request.connection_id, request.request_id, now_ms())
            await self.gateway.bus.fanout.publish_rooms([(room_id, delivery)])

    # --- timers and fan-out callbacks -----------------------------------------------------------
    def _approved(self, ws: ServerConnection) -> None:
        state = self._states.get(ws)
        if state is None:
            return
        state.conn.session.pending = False
        if state.approval is not None:
            state.approval.cancel()
            state.approval = None

    def _not_approved(self, ws: ServerConnection) -> None:
        state = self._states.get(ws)
        if state is None or not state.conn.session.pending:
            return
        log.info("connection not approved in time", room_id=state.conn.room_id)
        self.gateway.fanout.close_soon(ws, CloseCode.NOT_APPROVED, "Not approved by a moderator")

    def _check_idle(self, ws: ServerConnection) -> None:
        state = self._states.get(ws)
        if state is None:
            return
        timeout = self.gateway.settings.idle_timeout
        loop = asyncio.get_running_loop()
        idle = loop.time() - getattr(ws, "last_activity", 0.0)
        if idle >= timeout:
            state.idle = None
            self.gateway.fanout.close_soon(ws, CloseCode.IDLE_TIMEOUT, "Idle timeout")
        else:
            state.idle = loop.call_later(timeout - idle, self._check_idle, ws)
