"""Read deadlines and a per-client connection cap for the control plane's aiohttp server.

Without them a client that connects and sends nothing, trickles its request head, or stops
half-way through a body holds a socket (and a file descriptor) for about an hour: aiohttp's
default keep-alive timeout is 3630 s and it has no body timeout. What aiohttp already has is used
as is; this module adds only what it lacks:

* **head deadline** — aiohttp's ``keepalive_timeout`` (a request-handler argument, passed through
  ``AppRunner(**kwargs)``) is armed when a connection opens and again after every response, is not
  pushed back by incoming bytes, and closes the connection if no complete request head arrived by
  then. So it is a deadline for the next head (a slowloris gains nothing by trickling) and the idle
  keep-alive limit in one timer. Head size is bounded by aiohttp too (8190-byte lines and fields,
  128 header lines), bodies by ``client_max_size`` (1 MiB).
* **body deadline** — :func:`body_deadline`, a middleware: a body still incomplete that long after
  its head is cut off by closing the connection.
* **per-client cap** — :class:`ClientCappedSite`, a site whose protocol factory counts open
  connections per client IP and closes any over the cap as soon as it is accepted.

:func:`serve` puts them together; ``parley api`` and ``parley dev`` both reach it through
``parley.embedded.ApiServer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from api.errors import ApiError
from shared import metrics
from shared.config import Settings

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Seconds for a request head and for a body; open connections allowed per client IP (0 = no cap)."""

    header_timeout: float
    body_timeout: float
    max_connections_per_client: int

    def __post_init__(self) -> None:
        # No "off" value for the deadlines: an unbounded read is exactly what this module removes.
        if not self.header_timeout > 0:
            raise ValueError("PARLEY_API_HEADER_TIMEOUT must be > 0 seconds")
        if not self.body_timeout > 0:
            raise ValueError("PARLEY_API_BODY_TIMEOUT must be > 0 seconds")
        if self.max_connections_per_client < 0:
            raise ValueError("PARLEY_API_MAX_CONNECTIONS_PER_CLIENT must be >= 0 (0: no cap)")

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(settings.api_header_timeout, settings.api_body_timeout, settings.api_max_connections_per_client)


def handler_args(limits: ServerLimits) -> dict[str, Any]:
    """``AppRunner`` keyword arguments for aiohttp's own bounds (see the module docstring)."""
    return {"keepalive_timeout": limits.header_timeout}


# --- body deadline -------------------------------------------------------------------------------
class RequestTimeout(ApiError):
    """The body did not arrive in time. The connection is already closed when this is raised, so it
    is never delivered; it names the outcome in the request log and ``parley_api_requests``."""

    code: ClassVar[str] = "RequestTimeout"  # S3's name for the same condition
    status: ClassVar[int] = 408


def body_deadline(seconds: float) -> Middleware:
    """Middleware: close the connection if the request body is not complete ``seconds`` after its head.

    It closes rather than answering 408: HTTP/1.1 clients (urllib3 under boto3 among them) read
    the response only once they have sent the whole body, so a 408 would mostly go unread, and
    aiohttp would then keep the socket another ``lingering_time`` (10 s) draining the body. A closed
    connection is a retryable connection error to botocore.
    """

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content.is_eof():  # no body, or all of it already received
            return await handler(request)
        timer = asyncio.get_running_loop().call_later(seconds, _cut_off, request, seconds)
        try:
            return await handler(request)
        finally:
            timer.cancel()

    return deadline


def _cut_off(request: web.Request, seconds: float) -> None:
    if request.content.is_eof():  # the body arrived; the handler is just slow, which is not the client's doing
        return
    log.info("api.body_timeout", peer=request.remote, path=request.path, seconds=seconds)
    # A handler waiting on the body wakes with RequestTimeout rather than a generic connection reset.
    request.content.set_exception(RequestTimeout(f"The request body did not arrive within {seconds:g} s"))
    if request.transport is not None:
        request.transport.close()


# --- per-client connection cap -------------------------------------------------------------------
ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class ClientCap:
    """Open connections per client IP; :meth:`wrap` makes a protocol factory that enforces the cap."""

    def __init__(self, max_per_client: int) -> None:
        self.max_per_client = max_per_client
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
            metrics.API_CONNECTIONS_REFUSED.inc()
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

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_per_client: int) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._cap = ClientCap(max_per_client)
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


async def serve(app: web.Application, host: str, port: int, limits: ServerLimits) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` within ``limits``; the runner (to clean up) and the bound port.

    The body deadline is a middleware, so ``app`` carries it itself (``api.app.create_app``).
    """
    runner = web.AppRunner(app, access_log=None, **handler_args(limits))
    await runner.setup()
    site = ClientCappedSite(runner, host, port, max_per_client=limits.max_connections_per_client)
    await site.start()
    return runner, site.port
