"""The HTTP side the aiohttp fronts share (groupschat, plic): their app, served within read bounds,
and aiohttp's own refusals (unknown path, wrong method, body too large) and a cut-off body
answered in the front's error shape.

The bounds are the control plane's (``shared.http_limits``) with the fronts' own settings
(``PARLEY_FRONT_HEADER_TIMEOUT``, ``PARLEY_FRONT_BODY_TIMEOUT``,
``PARLEY_FRONT_MAX_CONNECTIONS_PER_CLIENT``, one set for both fronts): a request head must arrive
within the head deadline of connecting or of the previous response (also the idle keep-alive
limit; an upgraded WebSocket is never cut by it), a body within the body deadline of its head,
and one client IP holds at most the cap of open connections, WebSockets included (more are closed
on accept, counted in ``parley_front_connections_refused_total{Protocol}``). They are not the
``PARLEY_API_*`` values because the fronts face end users — a WebSocket per device, many behind
one NAT or load-balancer address — where the control plane faces a few app servers: the cap, above
all, wants sizing (or ``0``) per listener.

A body cut off by its deadline is answered 408 in the front's shape, with ``Connection: close``,
and the connection closed: the fronts' clients (browsers, aiohttp) read while they send, so
they see why. It is logged ``<front>.body_timeout``.

Must not: know any front's routes or bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.server import LISTEN_BACKLOG
from shared import http_limits, metrics
from shared.http_limits import ServerLimits
from shared.protocol.envelope import ClientProtocol

Refusal = Callable[[str, int], web.Response]  # (reason, HTTP status) → the front's error response
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refusals_as(refusal: Refusal) -> Middleware:
    """A middleware that answers aiohttp's HTTP errors (4xx, 5xx) with ``refusal``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            return refusal(error.reason, error.status)

    return middleware


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, however its bytes are split across reads; None if it is (or says
    in Content-Length it will be) over ``limit`` bytes. Waits for the body within the deadline:
    a body cut off raises the 408 :func:`application` answers."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):  # b"" once the body is complete
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _body_timeout(reason: str) -> web.HTTPRequestTimeout:
    return web.HTTPRequestTimeout(reason=reason)


def application(protocol: ClientProtocol, refusal: Refusal, limits: ServerLimits, *, max_body: int) -> web.Application:
    """An app for ``protocol``'s front: bodies up to ``max_body`` bytes within ``limits``' body
    deadline; aiohttp's refusals and a cut-off body answered with ``refusal``."""
    deadline = http_limits.body_deadline(
        limits.body_timeout, _body_timeout, event=f"{protocol}.body_timeout", answer=True
    )
    # the deadline outside the refusals: it sends the refusal of a cut-off body, then closes
    return web.Application(client_max_size=max_body, middlewares=[deadline, refusals_as(refusal)])


async def listen(
    app: web.Application, host: str, port: int, limits: ServerLimits, protocol: ClientProtocol
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` within ``limits``' head deadline and per-client cap; the runner
    (``cleanup()`` stops it) and the bound port (0 asks for any free one)."""
    refused = metrics.FRONT_CONNECTIONS_REFUSED.labels(protocol)
    return await http_limits.serve(app, host, port, limits, on_refused=refused.inc, backlog=LISTEN_BACKLOG)
