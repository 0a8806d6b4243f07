"""The plic front's listener: the seed's REST API and its WebSocket on one aiohttp port.

``ws://host:8094/?token=<Supabase JWT>``: a missing token is closed with 4001, a bad or expired
one with 4002, a user banned (BanUser) from one of their rooms with 4005; every close is preceded
by the seed's ``Disconnection`` frame. ``SendMessage`` becomes an ``ActionEnvelope`` for the
routers (rate-limited per connection here, then by the room, reviewed and logged like IVS);
malformed frames close with 4010; ``stop`` closes everyone with 4007.
Owns the sockets; must not decide room rules or keep state another replica needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import cast

import structlog
from aiohttp import WSMsgType, web

from gateway.admission import CONNECTIONS_GROUP, REPORT_TTL_MS, ConnectionQuota
from gateway.fronts import http
from gateway.fronts.aiohttp_wire import send
from gateway.ports import GatewayBus, GatewayStore
from shared.clock import now_ms
from shared.config import Settings
from shared.features import bans, membership
from shared.features.ratelimit import SlidingWindow
from shared.http_limits import ServerLimits
from shared.protocol.envelope import ActionEnvelope, ClientProtocol, Kind
from shared.protocol.ids import new_id

from . import auth, codec
from .connection import PlicConnection
from .hub import Hub, HubStore
from .rest import MAX_BODY_BYTES, Rest, answer
from .rooms import PlicBus, PlicRooms

log = structlog.get_logger("gateway.plic")

STOP_GRACE_SECONDS = 2.0
HARD_MAX_FRAME = 1 << 16  # beyond this aiohttp closes with 1009 instead of reading it


class PlicFront:
    def __init__(self, settings: Settings, store: GatewayStore, bus: GatewayBus) -> None:
        self.settings = settings
        # the front manages plic rooms like the control plane does: it needs the whole Store
        self.store = cast("HubStore", store)
        self.bus: PlicBus = bus
        self.front_id = f"plic-{secrets.token_hex(4)}"
        self.rooms = PlicRooms(settings, self.store, self.bus)
        self.hub = Hub(self.store, settings.max_send_buffer)
        # this front's slots of the account's connection quota, shared with every gateway
        self.quota = ConnectionQuota(store, CONNECTIONS_GROUP, self.front_id, REPORT_TTL_MS)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._shutting_down = False

    async def start(self, port: int | None = None) -> None:
        if not self.settings.plic_jwt_secret:
            log.warning("PARLEY_PLIC_JWT_SECRET is not set: every plic token is refused")
        await self.quota.start_reporting()
        self.hub.subscription = await self.bus.fanout.subscribe(
            self.front_id, self.hub.on_room, self.hub.on_gateway, self.hub.on_control
        )
        limits = ServerLimits.from_settings(self.settings, "front")
        app = http.application(ClientProtocol.PLIC, _refusal, limits, max_body=MAX_BODY_BYTES)
        app.add_routes(
            [web.get("/", self._websocket), web.get("/healthz", _health), *Rest(self.settings, self.rooms).routes()]
        )
        self._runner, self.port = await http.listen(
            app,
            self.settings.front_host,
            self.settings.plic_port if port is None else port,
            limits,
            ClientProtocol.PLIC,
        )
        log.info("plic front listening", front_id=self.front_id, port=self.port)

    async def stop(self) -> None:
        self._shutting_down = True
        closing = [
            self.hub.close_soon(conn, codec.Close.SERVER_SHUTDOWN, "Server is shutting down")
            for conn in self.hub.connections()
        ]
        if closing:  # the close handshakes, bounded: a client that stopped reading is cut at cleanup
            await asyncio.wait(closing, timeout=STOP_GRACE_SECONDS)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.quota.stop_reporting()
        if self.hub.subscription is not None:
            with contextlib.suppress(Exception):
                await self.hub.subscription.close()

    # --- one connection ----------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self._shutting_down:
            return web.Response(status=503, text="Server is shutting down\n")
        ws = web.WebSocketResponse(heartbeat=self.settings.ping_interval, max_msg_size=HARD_MAX_FRAME, compress=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="WebSocket upgrade expected\n")
        await ws.prepare(request)
        token = request.query.get("token", "")
        if not token:
            return await _refuse(ws, codec.Close.NO_AUTH_TOKEN, "No authentication token provided")
        try:
            user_id = auth.user_of(token, self.settings.plic_jwt_secret)
        except auth.InvalidToken:
            return await _refuse(ws, codec.Close.INVALID_TOKEN, "Token validation failed")
        reservation = self.quota.reserve(self.settings.max_connections)
        try:
            if not await reservation.granted():
                return await _refuse(ws, codec.Close.SERVER_ERROR, "Concurrent connection quota reached")
            return await self._serve(request, ws, user_id)
        finally:
            reservation.release()

    async def _serve(self, request: web.Request, ws: web.WebSocketResponse, user_id: str) -> web.WebSocketResponse:
        transport = request.transport
        assert transport is not None
        rate = SlidingWindow(self.settings.connection_rate_per_second)
        conn = PlicConnection(new_id(), user_id, ws, transport, rate)
        self.hub.register(conn)
        try:
            aliases = [a for a in await asyncio.gather(*map(self.rooms.alias, await self.rooms.rooms_of(user_id))) if a]
            keys = [bans.ban_key(alias.parley_id, user_id) for alias in aliases]
            if keys and any(await self.store.marks.claimed(keys)):
                return await _refuse(ws, codec.Close.BANNED, "User is Banned")
            await self.hub.join(conn, aliases)
            peer = request.remote or ""
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_frame(conn, msg.data, peer)
        except Exception:
            log.warning("plic connection failed", exc_info=True)
            self.hub.close_soon(conn, codec.Close.SERVER_ERROR, "Server error occurred")
        finally:
            if conn.closing is not None:  # finish the close handshake before the handler returns
                await asyncio.wait([conn.closing], timeout=STOP_GRACE_SECONDS)
            await self.hub.leave(conn)
        return ws

    async def _on_frame(self, conn: PlicConnection, data: str | bytes, peer: str) -> None:
        try:
            command = codec.parse_command(data, self.settings.max_frame_bytes)
        except codec.BadFrame as error:
            self.hub.close_soon(conn, codec.Close.BAD_MESSAGE_STRUCTURE, error.reason)
            return
        now = now_ms()
        temp_id = command.message_temp_id
        if not conn.rate.allow(now):
            reason = f"Too many messages: at most {conn.rate.limit} per second per connection"
            send(conn, codec.confirmation(temp_id, confirmed=False, reason=reason), self.hub.max_buffer)
            return
        try:
            parley_id = await self._room_for(conn, command.room_id, temp_id)
        except Exception:
            log.warning("plic room lookup failed", exc_info=True)
            send(
                conn,
                codec.confirmation(temp_id, confirmed=False, reason="Server error; try again"),
                self.hub.max_buffer,
            )
            return
        if parley_id is None:
            return
        request_id = new_id()
        self.hub.expect(request_id, conn, temp_id)
        try:
            await self._publish(conn, command, parley_id, request_id, now, peer)
        except Exception:
            log.warning("plic publish failed", exc_info=True)
            self.hub.forget(request_id)
            send(
                conn,
                codec.confirmation(temp_id, confirmed=False, reason="Server error; try again"),
                self.hub.max_buffer,
            )

    async def _publish(
        self, conn: PlicConnection, command: codec.SendMessage, parley_id: str, request_id: str, now: int, peer: str
    ) -> None:
        await self.bus.actions.publish(
            ActionEnvelope(
                kind=Kind.SEND_MESSAGE,
                protocol=ClientProtocol.PLIC,
                frame_id=new_id(),
                room_id=parley_id,
                received_ms=now,
                request_id=request_id,
                gateway_id=self.front_id,
                connection_id=conn.connection_id,
                user_id=conn.user_id,
                ip=peer,
                content=command.message,
            )
        )

    async def _room_for(self, conn: PlicConnection, room_id: int, temp: str) -> str | None:
        """The parley room to publish to, or None once the client has been answered."""
        parley_id = self.hub.room_of(conn, room_id)
        if parley_id is not None:
            return parley_id
        alias = await self.rooms.alias(room_id)
        if alias is None:
            send(
                conn, codec.confirmation(temp, confirmed=False, reason=f"Room {room_id} not found"), self.hub.max_buffer
            )
            return None
        if not await membership.is_member(self.store.members, alias.parley_id, conn.user_id):
            reason = "You are not a participant of this room"
            send(conn, codec.confirmation(temp, confirmed=False, reason=reason), self.hub.max_buffer)
            self.hub.close_soon(conn, codec.Close.UNAUTHORIZED_ACTION, reason)
            return None
        await self.hub.receive(conn, alias.parley_id, alias.room_id)  # just added: its notice is on the way
        return alias.parley_id


async def _refuse(ws: web.WebSocketResponse, code: codec.Close, reason: str) -> web.WebSocketResponse:
    await ws.send_str(codec.disconnection(code, reason).decode())
    await ws.close(code=code, message=reason.encode())
    return ws


def _refusal(reason: str, status: int) -> web.Response:
    return answer(error=reason, status=status)


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")
