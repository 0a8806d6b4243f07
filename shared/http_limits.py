"""Read deadlines and a per-client connection cap for parley's aiohttp servers: the control plane
(``api.limits``) and the aiohttp protocol fronts (``gateway.fronts.http``: groupschat, plic).

Without them a client that connects and sends nothing, trickles its request head, or stops
half-way through a body holds a socket (and a file descriptor) for about an hour: aiohttp's
default keep-alive timeout is 3630 s and it has no body timeout. What aiohttp already has is used
as is; this module adds only what it lacks:

* **head deadline** — aiohttp's ``keepalive_timeout`` (a request-handler argument, passed through
  ``AppRunner(**kwargs)``) is armed when a connection opens and again after every response, is not
  pushed back by incoming bytes, and closes the connection if no complete request head arrived by
  then. So it is a deadline for the next head (a slowloris gains nothing by trickling) and the idle
  keep-alive limit in one timer. It only ever closes a connection waiting for its next request: a
  handler still running (an upgraded WebSocket's is, for the socket's whole life) is never cut.
  Head size is bounded by aiohttp too (8190-byte lines and fields, 128 header lines), bodies by
  ``client_max_size``.
* **body deadline** — :func:`body_deadline`, a middleware: a body still incomplete that long after
  its head is cut off, either by closing the connection at once or by letting the handler answer
  first (see there).
* **per-client cap** — :class:`ClientCappedSite`, a site whose protocol factory counts open
  connections per client IP and closes any over the cap as soon as it is accepted.

:func:`serve` puts them together. The module is protocol-neutral: the error a cut-off body
raises, the log event and the refusal counter come from the caller, so each server keeps its own
error shape. It lives in ``shared/`` because two components serve HTTP with it; it is the one
place ``shared/`` uses aiohttp, and it must not know any server's routes or error bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from shared.config import Settings

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Listener = Literal["api", "front"]  # whose PARLEY_<LISTENER>_* settings a ServerLimits holds


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Seconds for a request head and for a body; open connections allowed per client IP (0 = no cap)."""

    header_timeout: float
    body_timeout: float
    max_connections_per_client: int
    listener: Listener = "api"  # names the variables in the errors below

    def __post_init__(self) -> None:
        # No "off" value for the deadlines: an unbounded read is exactly what this module removes.
        prefix = f"PARLEY_{self.listener.upper()}"
        if not self.header_timeout > 0:
            raise ValueError(f"{prefix}_HEADER_TIMEOUT must be > 0 seconds")
        if not self.body_timeout > 0:
            raise ValueError(f"{prefix}_BODY_TIMEOUT must be > 0 seconds")
        if self.max_connections_per_client < 0:
            raise ValueError(f"{prefix}_MAX_CONNECTIONS_PER_CLIENT must be >= 0 (0: no cap)")

    @classmethod
    def from_settings(cls, settings: Settings, listener: Listener = "api") -> ServerLimits:
        """The control plane's ``PARLEY_API_*`` bounds (the default, which ``api.limits`` relies on),
        or with ``listener="front"`` the aiohttp fronts' ``PARLEY_FRONT_*`` ones."""
        if listener == "front":
            return cls(
                settings.front_header_timeout,
                settings.front_body_timeout,
                settings.front_max_connections_per_client,
                listener,
            )
        return cls(
            settings.api_header_timeout, settings.api_body_timeout, settings.api_max_connections_per_client, listener
        )


def handler_args(limits: ServerLimits) -> dict[str, Any]:
    """``AppRunner`` keyword arguments for aiohttp's own bounds (see the module docstring)."""
    return {"keepalive_timeout": limits.header_timeout}


# --- body deadline -------------------------------------------------------------------------------
def body_deadline(
    seconds: float, error: Callable[[str], BaseException], *, event: str, answer: bool = False
) -> Middleware:
    """Middleware: cut off a request whose body is not complete ``seconds`` after its head.

    At the deadline the cut-off is logged as ``event`` and a handler waiting on the body wakes with
    ``error(reason)`` rather than a generic connection reset. Then:

    * ``answer=False``: the connection is closed at once, so nothing more is sent. For clients that
      read the response only once they have sent the whole body (urllib3 under boto3 among them).
    * ``answer=True``: the handler's response (its answer to ``error``, in the server's own shape)
      is sent with ``Connection: close`` and the connection closed right after, without aiohttp's
      ``lingering_time`` (10 s) of draining the rest of the body. For clients that read while they
      send (browsers, aiohttp). The handler must read its body before any unbounded wait.

    Place it outside the middleware that turns ``error`` into a response.
    """

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content.is_eof():  # no body, or all of it already received
            return await handler(request)
        cut: list[bool] = []

        def cut_off() -> None:
            if request.content.is_eof():  # the body arrived; the handler is just slow, not the client
                return
            cut.append(True)
            log.info(event, peer=request.remote, path=request.path, seconds=seconds)
            request.content.set_exception(error(f"The request body did not arrive within {seconds:g} s"))
            if not answer and request.transport is not None:
                request.transport.close()

        timer = asyncio.get_running_loop().call_later(seconds, cut_off)
        try:
            response = await handler(request)
        finally:
            timer.cancel()
        if cut and answer:
            await _send_then_close(request, response)
        return response

    return deadline


async def _send_then_close(request: web.Request, response: web.StreamResponse) -> None:
    """Write ``response`` to a cut-off request, then close the connection (the rest of its body is
    never read: aiohttp would otherwise linger draining it)."""
    response.force_close()
    with contextlib.suppress(ConnectionError):  # the client went away meanwhile
        await response.prepare(request)
        await response.write_eof()
    request.protocol.force_close()  # transport.close(): the written response is flushed first


# --- per-client connection cap -------------------------------------------------------------------
ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class ClientCap:
    """Open connections per client IP; :meth:`wrap` makes a protocol factory that enforces the cap
    and calls ``on_refused`` for every connection it closes."""

    def __init__(self, max_per_client: int, on_refused: Callable[[], None]) -> None:
        self.max_per_client = max_per_client
        self.on_refused = on_refused
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if self.max_per_client and count >= self.max_per_client:
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def wrap(self, factory: ProtocolFactory) -> Callable[[], asyncio.Protocol]:
        return lambda: _CappedProtocol(self, factory)


class _CappedProtocol(asyncio.Protocol):
    """Admits the connection against the cap, then hands every transport event to the real protocol
    (aiohttp's request handler), which is only created for admitted connections."""

    __slots__ = ("_address", "_cap", "_factory", "_inner")

    def __init__(self, cap: ClientCap, factory: ProtocolFactory) -> None:
        self._cap = cap
        self._factory = factory
        self._inner: Any = None
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = _client_address(transport)
        if not self._cap.admit(address):
            self._cap.on_refused()
            transport.close()
            return
        self._address = address
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        assert self._address is not None
        self._cap.release(self._address)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def _client_address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class ClientCappedSite(web.BaseSite):
    """A TCP site like ``web.TCPSite`` whose connections pass a :class:`ClientCap` first.

    ``TCPSite`` hands the runner's server straight to ``loop.create_server``; this site wraps it.
    """

    __slots__ = ("_cap", "_host", "_listener", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_per_client: int,
        on_refused: Callable[[], None],
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._cap = ClientCap(max_per_client, on_refused)
        self._listener: asyncio.Server | None = None  # also BaseSite's _server, which stop() closes

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the requested one until started)."""
        if self._listener is not None and self._listener.sockets:
            return int(self._listener.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()  # registers the site with its runner, which stops it on cleanup
        server = self._runner.server
        assert server is not None
        self._listener = await asyncio.get_running_loop().create_server(
            self._cap.wrap(server), self._host, self._port, backlog=self._backlog
        )
        self._server = self._listener


async def serve(
    app: web.Application,
    host: str,
    port: int,
    limits: ServerLimits,
    *,
    on_refused: Callable[[], None],
    backlog: int = 128,
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` within ``limits``; the runner (``cleanup()`` stops it) and the
    bound port (0 asks for any free one). ``on_refused`` counts connections closed by the cap.

    The body deadline is a middleware, so ``app`` carries it itself (:func:`body_deadline`).
    """
    runner = web.AppRunner(app, access_log=None, **handler_args(limits))
    await runner.setup()
    site = ClientCappedSite(
        runner, host, port, max_per_client=limits.max_connections_per_client, on_refused=on_refused, backlog=backlog
    )
    await site.start()
    return runner, site.port
