"""HTTP side of the demo: the page, its static files and ``POST /demo/token`` on the control-plane app.

These routes are mounted on ``app.router`` and so skip SigV4 (see ``api.app``); ``mount_demo`` is
called only when the demo is enabled (``Settings.demo``).

``POST /demo/token`` answers every refusal in the demo's own shape, ``{"error": {code, message,
field?}}``, which the page shows. Because it mints tokens and creates rooms without credentials,
it takes requests from its own page only: a browser ``Origin`` other than this server's is a 403
(checked first, so a foreign page cannot spend a visitor's rate-limit budget either), and anything
but ``application/json`` is a 415, since a ``text/plain`` POST is a CORS "simple request" any
page can send without a preflight. Clients without ``Origin`` (curl, scripts) are not browsers
acting for someone else and are let through.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from api.app import API_CONTEXT
from api.context import ApiContext
from api.demo import ratelimit
from api.demo.inputs import DemoInputError, parse_token_request
from api.demo.vending import TokenVendor, VendedToken
from api.errors import ApiError
from shared.clock import now_ms
from shared.config import Settings
from shared.protocol.text import UNPAIRED_SURROGATE, has_unencodable, is_encodable

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 4096  # a valid request is well under 300 bytes
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_DEFAULT_PORTS = {"http": 80, "https": 443}
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


def is_own_origin(origin: str, host: str | None) -> bool:
    """True if the browser ``Origin`` names this server: the host and port of its ``Host`` header.

    The scheme is not compared (behind a TLS proxy the server sees http), so a missing port on
    either side is the default port of the Origin's scheme. ``null`` and non-web schemes never match.
    """
    theirs, ours = urlsplit(origin), urlsplit(f"//{host or ''}")
    default = _DEFAULT_PORTS.get(theirs.scheme)
    if default is None or not theirs.hostname or not ours.hostname:
        return False
    try:
        return (theirs.hostname, theirs.port or default) == (ours.hostname, ours.port or default)
    except ValueError:  # a port that is not a number
        return False


async def _read_body(request: web.Request) -> bytes:
    """The whole body, up to :data:`MAX_BODY_BYTES` (it may arrive in several pieces)."""
    too_large = DemoInputError("body", f"The body must be at most {MAX_BODY_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    data = bytearray()
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(data)):
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise too_large
    return bytes(data)


def _unencodable_field(body: Any) -> str | None:
    """The top-level field holding a string no UTF-8 encoder accepts ("body" if not a field's)."""
    if isinstance(body, dict):
        for key, value in body.items():
            if not is_encodable(key):
                return "body"  # a key that cannot be encoded cannot be named either
            if has_unencodable(value):
                return key
    return "body" if has_unencodable(body) else None


def _decode_json(raw: bytes) -> Any:
    try:
        body = json.loads(raw)  # bytes: invalid UTF-8 is a ValueError, CESU-8 decodes to surrogates
    except ValueError:
        raise DemoInputError("body", "The body must be JSON") from None
    except RecursionError:  # json.loads recurses once per nesting level
        raise DemoInputError("body", "The body is nested too deeply") from None
    field = _unencodable_field(body)
    if field is not None:
        raise DemoInputError(field, f"{'The body' if field == 'body' else field} {UNPAIRED_SURROGATE}")
    return body


def _refuse_foreign(request: web.Request) -> web.Response | None:
    """The 403 or 415 for a request that is not the demo page's own JSON POST, else None."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and not is_own_origin(origin, request.headers.get(hdrs.HOST)):
        return _error(403, "ForbiddenOrigin", "Token requests are accepted from the demo page's own origin only")
    if request.content_type != "application/json":
        return _error(415, "UnsupportedMediaType", "The body must be sent as Content-Type: application/json")
    return None


def _token_handler(
    ctx: ApiContext, gateway_port: Callable[[], int], per_minute: int
) -> Callable[[web.Request], Awaitable[web.Response]]:
    vendor = TokenVendor(ctx)

    async def create_token(request: web.Request) -> web.Response:
        refusal = _refuse_foreign(request)
        if refusal is not None:
            return refusal
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
            token_request = parse_token_request(_decode_json(await _read_body(request)))
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
