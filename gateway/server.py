"""The gateway process: websockets server wiring around admission, sessions and fan-out."""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway.admission import (
    CONNECTIONS_GROUP,
    REPORT_TTL_MS,
    Admitted,
    ConnectionQuota,
    Rejection,
    admit,
    offered_token,
)
from gateway.deadlines import Deadlines
from gateway.fanout import RoomFanout
from gateway.gapfill import GapFill
from gateway.history import answer_history
from gateway.keepalive import Keepalive
from gateway.lifecycle import Lifecycle, TrackedConnection
from gateway.ports import GatewayBus, GatewayStore
from gateway.presence import GatewayPresence, answer_presence
from gateway.session import ChatSession
from gateway.wire import send_frame
from shared import metrics
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import Record
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.closecodes import CloseCode
from shared.protocol.envelope import ClientProtocol
from shared.protocol.frames import Action, ClientRequest, ErrorCode, FrameError
from shared.protocol.ids import new_id
from shared.protocol.text import is_encodable

log = structlog.get_logger("gateway")

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


class GatewayConnection(TrackedConnection):
    """A server connection that carries its admission from the handshake to the handler, and holds
    its quota slot until the TCP connection is gone, so the slot comes back however it ends: a
    handshake that fails after admission (the client left, the server is closing), a handler that
    fails before joining, or the end of a chat connection."""

    admitted: Admitted | None = None
    lost = False

    def hold(self, admitted: Admitted) -> None:
        self.admitted = admitted
        if self.lost:  # gone while it was being admitted
            admitted.reservation.release()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        try:
            super().connection_lost(exc)
        finally:
            if self.admitted is not None:
                self.admitted.reservation.release()


class Gateway:
    def __init__(
        self, settings: Settings, store: GatewayStore, bus: GatewayBus, *, gateway_id: str | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.gateway_id = gateway_id or settings.gateway_id or secrets.token_hex(4)
        self.fanout = RoomFanout(settings.max_send_buffer)
        self.gap_fill = GapFill(self.fanout, store, settings)  # after a lost pub/sub subscription
        self.lifecycle = Lifecycle(self)  # parley extensions: PING, idle timeout, approval
        self.presence = GatewayPresence(store, bus, self.gateway_id, settings.presence_ttl_seconds)
        # this gateway's slots of the account's connection quota, reserved in the store at each handshake
        self.quota = ConnectionQuota(store, CONNECTIONS_GROUP, self.gateway_id, REPORT_TTL_MS)
        self._server: Server | None = None
        self._expiry: Deadlines[ServerConnection] = Deadlines(self._expire)  # chat sessions' ends
        self.keepalive = Keepalive(
            settings.ping_interval,
            settings.ping_interval,  # the pong's deadline, as websockets' ping_timeout was set
            self.fanout.connections,
            settings.max_send_buffer,
            self.fanout.close_soon,
        )
        self._shutting_down = False

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        self.fanout.subscription = await self.bus.fanout.subscribe(
            self.gateway_id, self.fanout.on_room, self.fanout.on_gateway, on_resubscribed=self.gap_fill.on_resubscribed
        )
        metrics.CONNECTION_QUOTA.set(self.settings.max_connections)
        # parley extension: the same beat keeps this gateway's presence entries alive
        await self.quota.start_reporting(heartbeat=self.presence.heartbeat)
        self._server = await serve(
            self._handle,
            host or self.settings.gateway_host,
            self.settings.gateway_port if port is None else port,
            process_request=self._process_request,
            select_subprotocol=_echo_subprotocol,
            compression=None,  # per-socket deflate would defeat encode-once fan-out
            max_size=HARD_MAX_FRAME,
            ping_interval=None,  # one Keepalive for all connections (gateway/keepalive.py)
            create_connection=GatewayConnection,  # last activity (idle timeout), the quota slot
            backlog=LISTEN_BACKLOG,
        )
        self.keepalive.start()
        log.info("gateway listening", gateway_id=self.gateway_id, port=self.port)

    async def stop(self) -> None:
        """Graceful: refuse new connections, tell clients to reconnect (ERROR 401), close."""
        self._shutting_down = True
        await self.keepalive.stop()
        self._expiry.close()  # sessions end with the gateway; no expiry fires into the shutdown
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
            self.fanout.close_soon(ws, CloseCode.GOING_AWAY, "Gateway shutting down")
        if self._server is not None:
            await self._server.wait_closed()
        await self.quota.stop_reporting()
        with contextlib.suppress(Exception):
            await self.presence.stop()
        if self.fanout.subscription is not None:
            await self.fanout.subscription.close()

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
            token=offered_token(request.headers.get_all("Sec-WebSocket-Protocol")),  # several headers: RFC 6455
            now_ms=now_ms(),
            quota=self.quota,
            max_connections=self.settings.max_connections,
        )
        if isinstance(result, Rejection):
            return _reject(ws, result)
        assert isinstance(ws, GatewayConnection)  # create_connection
        ws.hold(result)  # for _handle; the slot is released when the connection is gone, even if the handshake fails
        return None

    # --- one connection ----------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, GatewayConnection) and ws.admitted is not None  # _process_request admitted it
        admitted = ws.admitted
        token = admitted.token
        forget_handshake(ws)
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
        metrics.connection_opened(ClientProtocol.IVS)
        delay = max(token.session_expires_ms - now_ms(), 0) / 1000
        self._expiry.add(ws, delay)
        try:
            await self.lifecycle.joined(conn)
            async for data in ws:
                await self._on_frame(ws, session, data)
        except ConnectionClosed:
            pass
        finally:
            self._expiry.discard(ws)
            self.lifecycle.left(ws)
            metrics.connection_closed(ClientProtocol.IVS)
            await self.fanout.leave(conn)
            admitted.reservation.release()  # now, not when the socket is closed (GatewayConnection)
            await self.presence.leave(connection_id)

    async def _on_frame(self, ws: ServerConnection, session: ChatSession, data: str | bytes) -> None:
        """Answer one client frame. Every failure becomes an ERROR frame to this client: an
        exception escaping here would end the connection with 1011."""
        request_id: str | None = None
        try:
            action = session.request(data, now_ms())
            request_id = action.request_id
            if isinstance(action, ClientRequest):  # answered here, not by a router
                await self._answer(ws, session.token.room_id, action)
            else:
                await self.bus.actions.publish(action)
        except FrameError as error:
            self._send_error(ws, error.code, error.message, error.request_id)
        except Exception:
            _log_unexpected("answering a frame failed", room_id=session.token.room_id)
            self._send_error(ws, ErrorCode.INTERNAL, "Could not answer the request; try again", request_id)

    async def _answer(self, ws: ServerConnection, room_id: str, request: ClientRequest) -> None:
        if request.action is Action.GET_PRESENCE:
            await answer_presence(self.store, ws, room_id, request, self.fanout.max_send_buffer)
        elif request.action is Action.GET_HISTORY:
            await answer_history(self.store, self.fanout, ws, room_id, request)
        else:
            await self.lifecycle.answer(ws, room_id, request)

    def _send_error(self, ws: ServerConnection, code: int, message: str, request_id: str | None) -> None:
        """Cannot fail on the frame's text: parse_client_frame refuses unencodable text, and
        anything that slipped past it is dropped here rather than break the error path."""
        metrics.REQUEST_ERRORS.labels(str(code)).inc()
        if request_id is not None and not is_encodable(request_id):
            request_id = None
        if not is_encodable(message):
            message = _FALLBACK_MESSAGE
        frame = frames.error_frame(frame_id=new_id(), request_id=request_id, code=code, message=message)
        send_frame(ws, frame, self.fanout.max_send_buffer)

    def _expire(self, ws: ServerConnection) -> None:
        """Session over: ERROR 401 makes the SDK reconnect with a fresh token, then close."""
        frame = frames.error_frame(
            frame_id=new_id(), request_id=None, code=ErrorCode.UNAUTHORIZED, message="Chat session expired"
        )
        send_frame(ws, frame, self.fanout.max_send_buffer)
        self.fanout.close_soon(ws, CloseCode.SESSION_EXPIRED, "Session expired")


_FALLBACK_MESSAGE = "Invalid request"


@dataclass(slots=True)
class _Kind:
    logged_at: float
    held_back: int = 0


class ErrorLogThrottle:
    """Which unexpected errors get a traceback in the log.

    Clients choose how often a failing request is repeated (10 frames/s per connection, times every
    connection), so a traceback per frame would let them flood the log and bury everything else.
    One traceback per (event, exception type) per ``interval`` keeps each distinct failure visible;
    the next one logged says how many were held back meanwhile, and
    ``parley_request_errors_total{code="500"}`` counts every one. Pure: the clock is injected.
    """

    def __init__(
        self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic, max_kinds: int = 256
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._max_kinds = max_kinds
        self._kinds: dict[tuple[str, type[BaseException]], _Kind] = {}

    def __len__(self) -> int:
        return len(self._kinds)

    def forget(self) -> None:
        self._kinds.clear()

    def admit(self, event: str, kind: type[BaseException]) -> int | None:
        """None: hold this one back (counted). Otherwise log it now; the number is how many of
        its kind were held back since it was last logged."""
        now = self._clock()
        key = (event, kind)
        seen = self._kinds.get(key)
        if seen is not None and now - seen.logged_at < self.interval:
            seen.held_back += 1
            return None
        if seen is None and len(self._kinds) >= self._max_kinds:
            self._kinds.clear()  # bounded memory; a forgotten kind is merely logged once more
        self._kinds[key] = _Kind(now)
        return seen.held_back if seen is not None else 0


UNEXPECTED_ERRORS = ErrorLogThrottle()  # one budget per process: the log is per process


def _log_unexpected(event: str, **fields: object) -> None:
    """In an ``except`` block: log the exception being handled, within UNEXPECTED_ERRORS' budget."""
    failure = sys.exception()
    if failure is None:  # not handling an exception: nothing to log
        return
    held_back = UNEXPECTED_ERRORS.admit(event, type(failure))
    if held_back is not None:
        log.exception(event, held_back=held_back, **fields)


_NO_HEADERS = Headers()


def forget_handshake(ws: ServerConnection) -> None:
    """Drop the handshake's headers once the connection is open: websockets keeps the request and
    the response for the connection's life (about 3.5 KiB of Headers per idle connection, the token
    among them), and nothing reads them after the upgrade. The objects stay (websockets takes a
    missing request for "handshake not yet received"); only their headers and body go."""
    if ws.request is not None:
        ws.request.headers = _NO_HEADERS
    if ws.response is not None:
        ws.response.headers = _NO_HEADERS
        ws.response.body = b""


def _echo_subprotocol(ws: ServerConnection, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
    # The client aborts unless the token it offered is echoed back (spec §1.2).
    return subprotocols[0] if subprotocols else None


def _reject(ws: ServerConnection, rejection: Rejection) -> Response:
    metrics.CONNECT_REJECTIONS.labels(rejection.reason).inc()
    return ws.respond(rejection.status, rejection.detail + "\n")
