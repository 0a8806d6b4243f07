"""The gateway process: websockets server wiring around admission, sessions and fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateway.admission import Admitted, Rejection, admit, offered_token
from gateway.fanout import RoomFanout
from gateway.history import answer_history
from gateway.lifecycle import Lifecycle, TrackedConnection
from gateway.presence import GatewayPresence, answer_presence
from gateway.session import ChatSession
from gateway.wire import send_frame
from shared import closecodes, frames, metrics
from shared.bus import Bus
from shared.clock import now_ms
from shared.config import Settings
from shared.frames import Action, ClientRequest, ErrorCode, FrameError
from shared.ids import new_id
from shared.ratelimit import SlidingWindow
from shared.store import Record, Store

log = structlog.get_logger("gateway")

CONNECTIONS_GROUP = "gateway-connections"
REPORT_INTERVAL_S = 1.0
REPORT_TTL_MS = 5000
HARD_MAX_FRAME = 1 << 20  # beyond this websockets closes with 1009 instead of reading it
# asyncio's default listen backlog (100) overflows in a reconnect storm: the kernel drops the
# SYNs and each client waits a 1 s retransmit. The kernel caps this at net.core.somaxconn.
LISTEN_BACKLOG = 4096


@dataclass(slots=True)
class Connection:
    connection_id: str
    room_id: str
    user_id: str
    websocket: ServerConnection
    session: ChatSession
    room: Record  # the room's record as read at the handshake


class Gateway:
    def __init__(self, settings: Settings, store: Store, bus: Bus, *, gateway_id: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.gateway_id = gateway_id or settings.gateway_id or secrets.token_hex(4)
        self.fanout = RoomFanout(settings.max_send_buffer)
        self.lifecycle = Lifecycle(self)  # parley extensions: PING, idle timeout, approval
        self.presence = GatewayPresence(store, bus, self.gateway_id, settings.presence_ttl_seconds)
        self._others_connections = 0  # other gateways' last reported counts
        self._server: Server | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._shutting_down = False

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        self.fanout.subscription = await self.bus.subscribe(
            self.gateway_id, self.fanout.on_room, self.fanout.on_gateway
        )
        metrics.CONNECTION_QUOTA.set(self.settings.max_connections)
        await self._report()
        self._reporter = asyncio.create_task(self._report_loop(), name="gateway-report")
        self._server = await serve(
            self._handle,
            host or self.settings.gateway_host,
            self.settings.gateway_port if port is None else port,
            process_request=self._process_request,
            select_subprotocol=_echo_subprotocol,
            compression=None,  # per-socket deflate would defeat encode-once fan-out
            max_size=HARD_MAX_FRAME,
            ping_interval=self.settings.ping_interval,
            ping_timeout=self.settings.ping_interval,
            create_connection=TrackedConnection,  # last activity, for the idle timeout
            backlog=LISTEN_BACKLOG,
        )
        log.info("gateway listening", gateway_id=self.gateway_id, port=self.port)

    async def stop(self) -> None:
        """Graceful: refuse new connections, tell clients to reconnect (ERROR 401), close."""
        self._shutting_down = True
        if self._server is not None:
            self._server.close(close_connections=False)
        for ws in self.fanout.connections():
            frame = frames.error_frame(
                frame_id=new_id(),
                request_id=None,
                code=ErrorCode.UNAUTHORIZED,
                message="Gateway shutting down; reconnect with a new token",
            )
            send_frame(ws, frame, self.fanout.max_send_buffer)  # never waits on a client that stopped reading
            self.fanout.close_soon(ws, closecodes.GOING_AWAY, "Gateway shutting down")
        if self._server is not None:
            await self._server.wait_closed()
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
        with contextlib.suppress(Exception):
            await self.store.report(CONNECTIONS_GROUP, self.gateway_id, 0, 1)
        with contextlib.suppress(Exception):
            await self.presence.stop()
        if self.fanout.subscription is not None:
            await self.fanout.subscription.close()

    # --- connection quota --------------------------------------------------------------------
    async def _report(self) -> None:
        await self.presence.heartbeat()  # parley extension: keeps this gateway's presence entries alive
        await self.store.report(CONNECTIONS_GROUP, self.gateway_id, len(self.fanout), REPORT_TTL_MS)
        counts = await self.store.reports(CONNECTIONS_GROUP)
        self._others_connections = sum(v for k, v in counts.items() if k != self.gateway_id)

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            try:
                await self._report()
            except Exception:
                log.warning("connection count report failed", exc_info=True)

    # --- handshake ---------------------------------------------------------------------------
    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return ws.respond(HTTPStatus.OK, "ok\n")
        if path == "/metrics":
            if not self.settings.metrics_public:  # PARLEY_METRICS_PORT serves them; not on the clients' port
                return ws.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
            return ws.respond(HTTPStatus.OK, metrics.exposition().decode())
        if self._shutting_down:
            return _reject(ws, Rejection(HTTPStatus.SERVICE_UNAVAILABLE, "shutting_down", "Gateway shutting down"))
        result = await admit(
            store=self.store,
            secret=self.settings.token_keys,  # every PARLEY_TOKEN_SECRET key: rotation
            token=offered_token(request.headers.get("Sec-WebSocket-Protocol")),
            now_ms=now_ms(),
            connections_in_use=len(self.fanout) + self._others_connections,
            max_connections=self.settings.max_connections,
        )
        if isinstance(result, Rejection):
            return _reject(ws, result)
        ws.admitted = result  # type: ignore[attr-defined]  # handed to _handle
        return None

    # --- one connection ----------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        admitted: Admitted = ws.admitted  # type: ignore[attr-defined]
        token = admitted.token
        peer = ws.remote_address
        connection_id = new_id()
        session = ChatSession(
            token=token,
            connection_id=connection_id,
            gateway_id=self.gateway_id,
            ip=peer[0] if peer else "",
            max_frame_bytes=self.settings.max_frame_bytes,
            rate=SlidingWindow(self.settings.connection_rate_per_second),
            event_rate=SlidingWindow(self.settings.event_rate_per_second),
        )
        conn = Connection(connection_id, token.room_id, token.user_id, ws, session, admitted.room)
        await self.lifecycle.before_join(conn)
        # Presence first: nothing may delay the frame loop once the room's frames flow (GET_HISTORY
        # catch-up); the joiner itself may therefore miss its own parley:USER_JOINED.
        await self.presence.join(connection_id, token, admitted.room)
        await self.fanout.join(conn)
        metrics.CONCURRENT_CHAT_CONNECTIONS.inc()
        metrics.CONNECTIONS_RESOURCE_COUNT.inc()
        delay = max(token.session_expires_ms - now_ms(), 0) / 1000
        self._expiry[connection_id] = asyncio.get_running_loop().call_later(delay, self._expire, ws)
        try:
            await self.lifecycle.joined(conn)
            async for data in ws:
                await self._on_frame(ws, session, data)
        except ConnectionClosed:
            pass
        finally:
            self._expiry.pop(connection_id).cancel()
            self.lifecycle.left(ws)
            metrics.CONCURRENT_CHAT_CONNECTIONS.dec()
            metrics.CONNECTIONS_RESOURCE_COUNT.dec()
            await self.fanout.leave(conn)
            await self.presence.leave(connection_id)

    async def _on_frame(self, ws: ServerConnection, session: ChatSession, data: str | bytes) -> None:
        try:
            action = session.request(data, now_ms())
            if isinstance(action, ClientRequest):  # answered here, not by a router
                if action.action is Action.GET_PRESENCE:
                    await answer_presence(self.store, ws, session.token.room_id, action, self.fanout.max_send_buffer)
                    return
                if action.action is not Action.GET_HISTORY:
                    await self.lifecycle.answer(ws, session.token.room_id, action)
                    return
                await answer_history(self.store, self.fanout, ws, session.token.room_id, action)
                return
        except FrameError as error:
            self._send_error(ws, error.code, error.message, error.request_id)
            return
        except Exception:
            log.exception("answering a request failed", room_id=session.token.room_id)
            self._send_error(ws, ErrorCode.INTERNAL, "Could not answer the request; try again", None)
            return
        try:
            await self.bus.publish_action(action)
        except Exception:
            log.exception("publishing an action failed", room_id=action.room_id)
            self._send_error(ws, ErrorCode.INTERNAL, "Could not accept the request; try again", action.request_id)

    def _send_error(self, ws: ServerConnection, code: int, message: str, request_id: str | None) -> None:
        metrics.REQUEST_ERRORS.labels(str(code)).inc()
        frame = frames.error_frame(frame_id=new_id(), request_id=request_id, code=code, message=message)
        send_frame(ws, frame, self.fanout.max_send_buffer)

    def _expire(self, ws: ServerConnection) -> None:
        """Session over: ERROR 401 makes the SDK reconnect with a fresh token, then close."""
        frame = frames.error_frame(
            frame_id=new_id(), request_id=None, code=ErrorCode.UNAUTHORIZED, message="Chat session expired"
        )
        send_frame(ws, frame, self.fanout.max_send_buffer)
        self.fanout.close_soon(ws, closecodes.SESSION_EXPIRED, "Session expired")


def _echo_subprotocol(ws: ServerConnection, subprotocols: list[str]) -> str | None:
    # The client aborts unless the token it offered is echoed back (spec §1.2).
    return subprotocols[0] if subprotocols else None


def _reject(ws: ServerConnection, rejection: Rejection) -> Response:
    metrics.CONNECT_REJECTIONS.labels(rejection.reason).inc()
    return ws.respond(rejection.status, rejection.detail + "\n")
