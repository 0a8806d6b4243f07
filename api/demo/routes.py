"""HTTP side of the demo: the page, its static files and ``POST /demo/token`` on the control-plane app.

These routes are mounted on ``app.router`` and so skip SigV4 (see ``api.app``); ``mount_demo`` is
called only when the demo is enabled (``Settings.demo``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from api.app import API_CONTEXT
from api.context import ApiContext
from api.demo import ratelimit
from api.demo.inputs import DemoInputError, parse_token_request
from api.demo.vending import TokenVendor, VendedToken
from api.errors import ApiError
from shared.clock import now_ms
from shared.config import Settings

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 4096  # a valid request is well under 300 bytes
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
# The page loads only its own files and talks only to its own origin and the chat WebSocket.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def gateway_url(settings: Settings, request_host: str | None, port: int) -> str:
    """The chat WebSocket URL a browser on ``request_host`` should use."""
    if settings.demo_gateway_url:
        return settings.demo_gateway_url
    host = settings.gateway_host
    if host in _WILDCARD_HOSTS:
        # The gateway listens everywhere: the name the browser used for this page reaches it too.
        host = request_host or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{port}"


def _error(status: int, code: str, message: str, field: str | None = None, **headers: str) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status, headers=headers)


def _token_body(vended: VendedToken, display_name: str, url: str) -> dict[str, Any]:
    return {
        "token": vended.token,
        "tokenExpirationTime": vended.token_expiration_time,
        "sessionExpirationTime": vended.session_expiration_time,
        "userId": vended.user_id,
        "displayName": display_name,
        "capabilities": list(vended.capabilities),
        "roomArn": vended.room.arn,
        "roomId": vended.room.id,
        "roomName": vended.room.name,
        "maximumMessageLength": vended.room.maximum_message_length,
        "gatewayUrl": url,
    }


async def _read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise DemoInputError("body", f"The body must be at most {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise DemoInputError("body", f"The body must be at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise DemoInputError("body", "The body must be JSON") from None


def _token_handler(
    ctx: ApiContext, gateway_port: Callable[[], int], per_minute: int
) -> Callable[[web.Request], Awaitable[web.Response]]:
    vendor = TokenVendor(ctx)

    async def create_token(request: web.Request) -> web.Response:
        # request.remote is the TCP peer; X-Forwarded-For is not trusted, a client could pick any value.
        if not await ratelimit.allow(ctx.store, request.remote or "unknown", per_minute):
            retry = ratelimit.retry_after_seconds(now_ms())
            return _error(
                429,
                "TooManyRequests",
                f"Too many token requests; try again in {retry} s",
                **{"Retry-After": str(retry)},
            )
        try:
            token_request = parse_token_request(await _read_json(request))
            vended = await vendor.vend(token_request)
        except DemoInputError as exc:
            return _error(400, "InvalidInput", exc.message, exc.field)
        except ApiError as exc:  # quota or TPS limit of the control plane, or a model check
            return _error(exc.status, exc.code, exc.message)
        url = gateway_url(ctx.settings, request.url.host, gateway_port())
        return web.json_response(
            _token_body(vended, token_request.display_name, url), headers={"Cache-Control": "no-store"}
        )

    return create_token


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


def mount_demo(
    app: web.Application,
    *,
    gateway_port: Callable[[], int] | None = None,
    tokens_per_minute: int = ratelimit.DEFAULT_TOKENS_PER_MINUTE,
) -> None:
    """Add the demo's routes to the control-plane ``app`` (before it starts).

    ``gateway_port`` gives the port of a gateway in this process (``parley dev`` knows it only once
    the gateway listens); without one the page is sent to ``Settings.gateway_port``.
    """
    ctx = app[API_CONTEXT]
    port = gateway_port or (lambda: ctx.settings.gateway_port)
    app.router.add_get("/", _index)
    app.router.add_static("/demo/static/", STATIC_DIR)
    app.router.add_post("/demo/token", _token_handler(ctx, port, tokens_per_minute))
