"""The HTTP side the aiohttp fronts share (groupschat, plic): serving their app, and answering
aiohttp's own refusals (unknown path, wrong method, body too large) in the front's error shape.

Must not: know any front's routes or bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.server import LISTEN_BACKLOG

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


async def listen(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port``; the runner (``cleanup()`` stops it) and the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG).start()
    return runner, runner.addresses[0][1]  # the bound port (0 asks for any free one)
