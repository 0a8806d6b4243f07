"""The groups-chat listener: the seed's REST API and its RPC WebSocket on one aiohttp port.

``ws://host:8093/<session key>`` (the ``messaging_url`` of ``POST /sessions``): an unknown,
replaced or expired key is refused with HTTP 401 before the upgrade. Method 40 becomes a
SEND_MESSAGE ``ActionEnvelope`` for the routers (rate-limited per connection here, then by the
room, reviewed and logged like IVS); 41/42 and 60/61 become client events (``SEND_EVENT``
``parley:DELIVERED``/``READ`` to the message's sender, ``parley:TYPING_START``/``STOP``); 20 sends
the user's unsent log events (from the saved cursor on), and the cursor is saved as events are
delivered (``hub``) and when the connection ends. Malformed frames get an ERROR event and the connection stays.
Owns the sockets; must not decide room rules or keep state another replica needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import replace
from typing import cast

import structlog
from aiohttp import WSMsgType, web

from gateway.admission import CONNECTIONS_GROUP, REPORT_TTL_MS, ConnectionQuota
from gateway.fronts import http
from gateway.ports import GatewayBus, GatewayStore
from shared.clock import now_ms
from shared.config import Settings
from shared.features import membership
from shared.features.ratelimit import SlidingWindow
from shared.http_limits import ServerLimits
from shared.protocol.envelope import ActionEnvelope, ClientProtocol, Kind
from shared.protocol.ids import new_id

from . import codec
from .cursor import SaveSchedule
from .groups import GroupBus, Groups, GroupStore
from .hub import Connection, Hub
from .rest import MAX_BODY_BYTES, Rest, refuse

log = structlog.get_logger("gateway.groupschat")

STOP_GRACE_SECONDS = 2.0
HARD_MAX_FRAME = 1 << 16


class GroupsChatFront:
    def __init__(self, settings: Settings, store: GatewayStore, bus: GatewayBus) -> None:
        self.settings = settings
        self.store = cast("GroupStore", store)  # groups are managed here like the control plane does
        self.bus: GroupBus = bus
        self.front_id = f"groupschat-{secrets.token_hex(4)}"
        self.groups = Groups(settings, self.store, self.bus)
        self.hub = Hub(self.groups, settings.max_send_buffer)
        self.quota = ConnectionQuota(store, CONNECTIONS_GROUP, self.front_id, REPORT_TTL_MS)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._shutting_down = False

    async def start(self, port: int | None = None) -> None:
        if not self.settings.groupschat_jwt_secret:
            log.warning("PARLEY_GROUPSCHAT_JWT_SECRET is not set: logins are refused")
        await self.quota.start_reporting()
        self.hub.subscription = await self.bus.fanout.subscribe(
            self.front_id, self.hub.on_room, self.hub.on_gateway, self.hub.on_control
        )
        limits = ServerLimits.from_settings(self.settings, "front")
        app = http.application(ClientProtocol.GROUPSCHAT, refuse, limits, max_body=MAX_BODY_BYTES)
        rest = Rest(self.settings, self.groups, self._messaging_url)
        app.add_routes([web.get("/healthz", _health), *rest.routes(), web.get("/{key}", self._websocket)])
        self._runner, self.port = await http.listen(
            app,
            self.settings.front_host,
            self.settings.groupschat_port if port is None else port,
            limits,
            ClientProtocol.GROUPSCHAT,
        )
        log.info("groupschat front listening", front_id=self.front_id, port=self.port)

    def _messaging_url(self, request: web.Request, key: str) -> str:
        """``ws://`` + the Host the client used (any replica accepts the key)."""
        host = request.host if request.host and len(request.host) <= 255 else f"127.0.0.1:{self.port}"
        return f"ws://{host}/{key}"

    async def stop(self) -> None:
        self._shutting_down = True
        closing = [
            asyncio.ensure_future(conn.ws.close(code=1001, message=b"Server is shutting down"))
            for conn in self.hub.connections()
        ]
        if closing:
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
        session = await self.groups.session(request.match_info["key"])
        if session is None:
            return web.Response(
                status=401, body=codec.rest_error("Unknown or expired session"), content_type="application/json"
            )
        ws = web.WebSocketResponse(heartbeat=self.settings.ping_interval, max_msg_size=HARD_MAX_FRAME, compress=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="WebSocket upgrade expected\n")
        reservation = self.quota.reserve(self.settings.max_connections)
        try:
            if not await reservation.granted():
                return web.Response(status=429, text="Concurrent connection quota reached\n")
            await ws.prepare(request)
            return await self._serve(request, ws, session.user_id, session.key)
        finally:
            reservation.release()

    async def _serve(
        self, request: web.Request, ws: web.WebSocketResponse, user_id: str, key: str
    ) -> web.WebSocketResponse:
        transport = request.transport
        assert transport is not None
        rate = SlidingWindow(self.settings.connection_rate_per_second)
        saves = SaveSchedule(self.settings.groupschat_cursor_save_events, self.settings.groupschat_cursor_save_ms)
        conn = Connection(new_id(), user_id, ws, transport, rate, floor=now_ms(), saves=saves, session_key=key)
        self.hub.register(conn)
        try:
            for group_id in await self.groups.groups_of(user_id):
                await self.hub.add_room(conn, group_id)
            peer = request.remote or ""
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_frame(conn, msg.data, peer)
        except Exception:
            log.warning("groupschat connection failed", exc_info=True)
        finally:
            await self.hub.finish(conn)
        return ws

    def _error(self, conn: Connection, code: int, message: str, method: int | None = None, **extra: str) -> None:
        self.hub.send(conn, codec.error(now_ms(), code, message, method, **extra))

    async def _on_frame(self, conn: Connection, data: str | bytes, peer: str) -> None:
        try:
            command = codec.parse_command(data, self.settings.max_frame_bytes)
        except codec.BadFrame as error:
            self._error(conn, 400, error.reason, error.method)
            return
        now = now_ms()
        if not conn.rate.allow(now):
            self._error(
                conn, 429, f"Too many requests: at most {conn.rate.limit} per second per connection", command.method
            )
            return
        if command.method == codec.Method.EVENTS:
            conn.resume(await self.groups.log.cursor(conn.user_id))
            await self.hub.pull(conn)
            await self.hub.save(conn)
            return
        try:
            await self._publish(conn, command, now, peer)
        except Exception:
            log.warning("groupschat publish failed", exc_info=True)
            self._error(conn, 500, "Server error; try again", command.method)

    async def _publish(self, conn: Connection, command: codec.Command, now: int, peer: str) -> None:
        method = int(command.method)
        envelope = ActionEnvelope(
            kind=Kind.SEND_EVENT,
            protocol=ClientProtocol.GROUPSCHAT,
            frame_id=new_id(),
            room_id=command.group_id,
            received_ms=now,
            request_id=new_id(),
            gateway_id=self.front_id,
            connection_id=conn.connection_id,
            user_id=conn.user_id,
            ip=peer,
        )
        if command.method in codec.RECEIPTS:
            known = conn.senders.get(command.message_id) or await self._sender_in_log(conn, command.message_id)
            if known is None:
                self._error(conn, 404, "Unknown message", method, message_id=command.message_id)
                return
            group_id, sender = known
            envelope = replace(
                envelope,
                room_id=group_id,
                event_name=codec.RECEIPTS[command.method],
                attributes={"MessageId": command.message_id},
                recipient=sender,
            )
            context = {"message_id": command.message_id}
        else:
            if not await self._member(conn, command.group_id):
                self._error(conn, 403, "You are not a member of this group", method, group_id=command.group_id)
                return
            context = {"group_id": command.group_id}
            if command.method == codec.Method.SEND:
                envelope = replace(envelope, kind=Kind.SEND_MESSAGE, content=command.data)
            else:
                envelope = replace(envelope, event_name=codec.TYPING[command.method])
        assert envelope.request_id is not None
        self.hub.expect(envelope.request_id, conn, method, context)
        try:
            await self.bus.actions.publish(envelope)
        except Exception:
            self.hub.forget(envelope.request_id)
            raise

    async def _sender_in_log(self, conn: Connection, message_id: str) -> tuple[str, str] | None:
        """A message received on an earlier connection: its (group, sender) from the user's log."""
        for _, group_id, payload in await self.groups.log.read(conn.user_id):
            event = codec.logged(group_id, payload)
            if event is not None and event.kind == codec.Event.MESSAGE and event.body.get("message_id") == message_id:
                return str(event.body.get("group_id")), str(event.body.get("user_id"))
        return None

    async def _member(self, conn: Connection, group_id: str) -> bool:
        if group_id in conn.rooms:
            return True
        if not await self.groups.is_group(group_id):
            return False
        if not await membership.is_member(self.store.members, group_id, conn.user_id):
            return False
        await self.hub.add_room(conn, group_id)
        return True


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")
