"""The relay front's listener (seed 001): ``ws://host:8091/<app>``, one parley user per connection.

Owns the sockets, each connection's id, rates, admin flag and approval timer. Messages become
``ActionEnvelope``s for the routers (rated, reviewed, logged like IVS); the room's deliveries come
back through :class:`~gateway.fanout.RoomFanout`, translated once per item by ``codec``.
Approval reuses parley's: ``parley:CONNECTION_PENDING`` to moderators (= admins) as ``new_id``,
``parley:CONNECTION_APPROVED`` on the room channel admitting the connection wherever it is.
Must not: decide room rules (the router's) or keep state another replica needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateway.admission import CONNECTIONS_GROUP, REPORT_TTL_MS, ConnectionQuota, Reservation
from gateway.fanout import RoomFanout, Translated
from gateway.fronts.relay import codec
from gateway.fronts.relay.admin import AdminKeys, connection_window
from gateway.fronts.relay.rooms import RoomRefused, app_name, resolve
from gateway.gapfill import GapFill
from gateway.keepalive import Keepalive
from gateway.lifecycle import TrackedConnection
from gateway.ports import GatewayBus, GatewayStore
from gateway.presence import GatewayPresence
from gateway.server import HARD_MAX_FRAME, LISTEN_BACKLOG, forget_handshake
from gateway.wire import send_frame
from shared import metrics
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import Record
from shared.features import approval
from shared.features.ratelimit import SlidingWindow
from shared.protocol.closecodes import CloseCode
from shared.protocol.envelope import ActionEnvelope, ClientProtocol, ConnectionNotice, DeliveryItem, Kind
from shared.protocol.ids import new_id
from shared.protocol.models import DEFAULT_MAX_MESSAGE_LENGTH
from shared.protocol.tokens import ChatToken

log = structlog.get_logger("relay")


class RelaySocket(TrackedConnection):
    """Carries the handshake's room and quota slot to the handler; the slot comes back however
    the connection ends."""

    room: Record | None = None
    reservation: Reservation | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self.reservation is not None:
                self.reservation.release()


@dataclass(slots=True)
class RelayConnection:
    connection_id: str  # also its parley user id
    room_id: str
    user_id: str
    websocket: ServerConnection
    room: Record
    ip: str
    rate: SlidingWindow
    event_rate: SlidingWindow
    admin_attempts: SlidingWindow = field(default_factory=connection_window)
    admin: bool = False
    waiting: asyncio.TimerHandle | None = None  # until approved or admin


class RelayFront:
    def __init__(self, settings: Settings, store: GatewayStore, bus: GatewayBus) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.front_id = f"relay-{settings.gateway_id}-{secrets.token_hex(3)}"
        self.fanout = RoomFanout(settings.max_send_buffer, translator=self, protocol=ClientProtocol.RELAY)
        self.keepalive = Keepalive(
            settings.ping_interval,
            settings.ping_interval,
            lambda: list(self._conns),
            settings.max_send_buffer,
            self.fanout.close_soon,
        )
        self.gap_fill = GapFill(self.fanout, store, settings)  # after a lost pub/sub subscription
        self.fanout.on_approved = self._approved
        self.presence = GatewayPresence(store, bus, self.front_id, settings.presence_ttl_seconds)
        self.quota = ConnectionQuota(store, CONNECTIONS_GROUP, self.front_id, REPORT_TTL_MS)
        self.admin_keys = AdminKeys(settings.relay_admin_key)
        self.port = 0
        self._server: Server | None = None
        self._conns: dict[ServerConnection, RelayConnection] = {}
        self._shutting_down = False

    async def start(self, port: int | None = None) -> None:
        self.fanout.subscription = await self.bus.fanout.subscribe(
            self.front_id, self.fanout.on_room, self.fanout.on_gateway, on_resubscribed=self.gap_fill.on_resubscribed
        )
        await self.quota.start_reporting(heartbeat=self.presence.heartbeat)
        self._server = await serve(
            self._handle,
            self.settings.front_host,
            self.settings.relay_port if port is None else port,
            process_request=self._process_request,
            compression=None,  # encode-once fan-out writes the same bytes to every socket
            max_size=HARD_MAX_FRAME,
            ping_interval=None,  # one Keepalive for all connections (gateway/keepalive.py)
            create_connection=RelaySocket,
            backlog=LISTEN_BACKLOG,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.keepalive.start()
        log.info("relay front listening", front_id=self.front_id, port=self.port)
        if not self.settings.relay_admin_key:
            log.warning("PARLEY_RELAY_ADMIN_KEY is not set: nobody can become admin or approve connections")

    async def stop(self) -> None:
        """Refuse new connections, tell every client in relay form, close with 1001. Idempotent."""
        if self._shutting_down:
            return
        self._shutting_down = True
        await self.keepalive.stop()
        if self._server is not None:
            self._server.close(close_connections=False)
        for ws in list(self._conns):  # joining ones too, not only those in the fan-out yet
            send_frame(ws, codec.error("server shutting down; reconnect"), self.fanout.max_send_buffer)
            self.fanout.close_soon(ws, CloseCode.GOING_AWAY, "shutting down")
        if self._server is not None:
            await self._server.wait_closed()
        await self.quota.stop_reporting()
        with contextlib.suppress(Exception):
            await self.presence.stop()
        if self.fanout.subscription is not None:
            await self.fanout.subscription.close()

    # --- handshake: the path names the app ------------------------------------------------------
    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] == "/healthz":
            return ws.respond(HTTPStatus.OK, "ok\n")
        if self._shutting_down:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        try:
            room = await resolve(self.store, self.settings, app_name(request.path))
        except RoomRefused as refused:
            return ws.respond(HTTPStatus(refused.status), refused.message + "\n")
        if room.get("members_only"):  # relay connections are anonymous: never members
            return ws.respond(HTTPStatus.FORBIDDEN, "This room is members-only\n")
        reservation = self.quota.reserve(self.settings.max_connections)
        assert isinstance(ws, RelaySocket)  # create_connection
        ws.room, ws.reservation = room, reservation
        try:
            granted = await reservation.granted()
        except Exception:
            reservation.release()
            raise
        if not granted:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Concurrent connection quota reached\n")
        return None

    # --- one connection ------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, RelaySocket) and ws.room is not None
        room = ws.room
        forget_handshake(ws)
        connection_id = str(uuid.uuid4())
        peer = ws.remote_address
        conn = RelayConnection(
            connection_id=connection_id,
            room_id=str(room["id"]),
            user_id=connection_id,
            websocket=ws,
            room=room,
            ip=peer[0] if peer else "",
            rate=SlidingWindow(self.settings.connection_rate_per_second),
            event_rate=SlidingWindow(self.settings.event_rate_per_second),
        )
        self._conns[ws] = conn
        metrics.connection_opened(ClientProtocol.RELAY)
        try:
            self.fanout.set_pending(conn.room_id, ws, receives=True)
            self.fanout.hold(ws)  # room frames wait until the greeting is out
            token = ChatToken("", conn.room_id, connection_id, frozenset())
            await self.presence.join(connection_id, token, room)
            await self.fanout.join(conn)
            # in the room on every replica from here: the greeting says the id is reachable
            self._send(ws, codec.welcome(connection_id))
            self.fanout.release(ws, set())
            if self.settings.approval_timeout > 0:  # 0: no deadline, as on the IVS gateway
                loop = asyncio.get_running_loop()
                conn.waiting = loop.call_later(self.settings.approval_timeout, self._not_approved, ws)
            delivery = approval.pending_delivery(conn.room_id, connection_id, connection_id, None, now_ms())
            await self.bus.fanout.publish_rooms([(conn.room_id, delivery)])  # admins: new_id
            async for data in ws:
                await self._on_frame(conn, data)
        except ConnectionClosed:
            pass
        finally:
            if conn.waiting is not None:
                conn.waiting.cancel()
            self._conns.pop(ws, None)
            metrics.connection_closed(ClientProtocol.RELAY)
            await self.fanout.leave(conn)
            if ws.reservation is not None:
                ws.reservation.release()
            await self.presence.leave(connection_id)

    async def _on_frame(self, conn: RelayConnection, data: str | bytes) -> None:
        """Every failure is a relay error frame to this client; the connection stays open."""
        ws = conn.websocket
        now = now_ms()
        try:
            limit = self.settings.max_frame_bytes
            if len(data) > limit or (isinstance(data, str) and len(data) * 4 > limit and len(data.encode()) > limit):
                self._rated(conn.rate, now)
                raise codec.RelayError(f"frames must be at most {self.settings.max_frame_bytes} bytes")
            try:
                request = codec.parse(data)
            except codec.RelayError:
                self._rated(conn.rate, now)  # malformed frames count like messages
                raise
            if isinstance(request, codec.Ping):
                self._rated(conn.event_rate, now, "pings")
                self._send(ws, codec.pong())
            elif isinstance(request, codec.Send):
                self._rated(conn.rate, now)
                await self._publish(conn, request, now)
            elif isinstance(request, codec.BecomeAdmin):
                self._become_admin(conn, request.key, now)
            else:
                await self._approve(conn, request.connection_id, now)
        except codec.RelayError as refused:
            self._send(ws, codec.error(refused.message))
        except Exception:
            log.warning("answering a relay frame failed", room_id=conn.room_id, exc_info=True)
            self._send(ws, codec.error("could not answer the request; try again"))

    @staticmethod
    def _rated(window: SlidingWindow, now: int, what: str = "messages") -> None:
        if not window.allow(now):
            raise codec.RelayError(f"too many requests: at most {window.limit} {what} per second per connection")

    async def _publish(self, conn: RelayConnection, send: codec.Send, now: int) -> None:
        limit = int(conn.room.get("maximum_message_length", DEFAULT_MAX_MESSAGE_LENGTH))
        if len(send.content) > limit:
            raise codec.RelayError(f"data must be at most {limit} characters (objects count as JSON text)")
        action = ActionEnvelope(
            kind=Kind.SEND_MESSAGE,
            protocol=ClientProtocol.RELAY,
            frame_id=new_id(),
            room_id=conn.room_id,
            received_ms=now,
            gateway_id=self.front_id,
            connection_id=conn.connection_id,
            user_id=conn.user_id,
            ip=conn.ip,
            content=send.content,
            attributes=send.attributes,
            recipient="" if send.to == "all" else send.to,
        )
        await self.bus.actions.publish(action)

    def _become_admin(self, conn: RelayConnection, key: str, now: int) -> None:
        ws = conn.websocket
        if not self.admin_keys.allow_attempt(conn.ip, conn.admin_attempts, now):
            self._send(ws, codec.admin_status(False, "too many admin attempts; wait a minute"))
            return
        if not self.admin_keys.matches(key):
            log.info("relay admin key refused", room_id=conn.room_id, connection_id=conn.connection_id)
            self._send(ws, codec.admin_status(False))
            return
        if not conn.admin:
            conn.admin = True
            self.fanout.add_moderator(conn.room_id, ws)
            self._stop_waiting(conn)
        self._send(ws, codec.admin_status(True))

    async def _approve(self, conn: RelayConnection, target: str, now: int) -> None:
        if not conn.admin:
            self._send(conn.websocket, codec.approved(target, False, "only admins approve connections"))
            return
        connections = await self.store.presence.list(conn.room_id)
        if not any(connection_id == target for connection_id, _, _ in connections):
            self._send(conn.websocket, codec.approved(target, False, "no such connection in this app"))
            return
        # success comes back to every admin of the room once the approval is on the room channel
        delivery = approval.approved_delivery(conn.room_id, target, None, now)
        await self.bus.fanout.publish_rooms([(conn.room_id, delivery)])

    # --- approval timer -----------------------------------------------------------------------
    def _approved(self, ws: ServerConnection) -> None:
        conn = self._conns.get(ws)
        if conn is not None:
            self._stop_waiting(conn)

    def _stop_waiting(self, conn: RelayConnection) -> None:
        if conn.waiting is not None:
            conn.waiting.cancel()
            conn.waiting = None

    def _not_approved(self, ws: ServerConnection) -> None:
        conn = self._conns.get(ws)
        if conn is None or conn.waiting is None:
            return
        conn.waiting = None
        self._send(ws, codec.error("not approved by an admin in time; disconnected"))
        self.fanout.close_soon(ws, CloseCode.NOT_APPROVED, "Not approved")

    # --- Translator: called by the fan-out once per item per room -------------------------------
    def item(self, room_id: str, item: DeliveryItem) -> Translated | None:
        try:
            out = codec.translate(item.frame)
        except (ValueError, AttributeError, TypeError):
            log.warning("untranslatable delivery", room_id=room_id)
            return None
        return None if out is None else Translated(out.payload, out.sender)

    def notice(self, notice: ConnectionNotice) -> bytes | None:
        return codec.translate_error(notice.frame)

    def _send(self, ws: ServerConnection, payload: bytes) -> None:
        send_frame(ws, payload, self.fanout.max_send_buffer)
