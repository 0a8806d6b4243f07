"""The control-plane HTTP server: routes, the per-request pipeline, and error conversion.

Every operation's route (method, path, success status) comes from botocore's ivschat model, so
boto3's ``ivschat`` client works against it with ``endpoint_url``. Each request goes through:
SigV4 check → decode (body / URI / query) → model validation → TPS limit → handler. Any
``ApiError`` becomes its IVS error shape; anything unexpected becomes InternalServerException.

Other components can mount more routes on ``app.router`` (e.g. the demo); they get the
``x-amzn-RequestId`` header, error conversion and the body deadline (``api.limits``) but no SigV4
check, which lives in the operation endpoints only. ``/metrics`` is mounted unless
``PARLEY_METRICS_PUBLIC=false``. ``app[API_CONTEXT]`` holds the settings, Store and Bus in use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from api import limits, protocol, sigv4, throttle, validation
from api.context import ApiContext, arn_id
from api.errors import (
    OTHER,
    REQUEST_ID_HEADER,
    UNKNOWN_OPERATION,
    ApiError,
    InternalServerException,
    ValidationException,
    json_response,
)
from api.operations import OPERATIONS, Handler
from api.ports import ApiBus, ApiStore
from shared import metrics
from shared.config import Settings

API_CONTEXT = web.AppKey("parley.api.context", ApiContext)
# Typed request keys where aiohttp has them (3.13+); plain strings work on older versions.
_RequestKey: Any = getattr(web, "RequestKey", lambda name, _type: name)
_REQUEST_ID = _RequestKey("parley.request_id", str)
_OPERATION = _RequestKey("parley.operation", str)

log = structlog.get_logger()


@web.middleware
async def _envelope(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id on every response; IVS error bodies for every failure; one log line."""
    request_id = str(uuid.uuid4())
    request[_REQUEST_ID] = request_id
    started = time.perf_counter()
    error_code: str | None = None
    try:
        response = await handler(request)
    except ApiError as exc:
        error_code = exc.code
        response = exc.to_response(request_id)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        error = ValidationException(f"Unknown operation: {request.method} {request.path}", UNKNOWN_OPERATION)
        error_code = error.code
        response = error.to_response(request_id)
    except web.HTTPRequestEntityTooLarge:
        # aiohttp's body limit (1 MiB) is far above any valid request; answer in IVS's shape.
        error = ValidationException("The request body is too large", OTHER)
        error_code = error.code
        response = error.to_response(request_id)
    except web.HTTPException as exc:
        exc.headers.setdefault(REQUEST_ID_HEADER, request_id)
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        # Headers (Authorization) and bodies are deliberately not logged.
        log.exception("api.internal_error", request_id=request_id, operation=request.get(_OPERATION))
        error_code = InternalServerException.code
        response = InternalServerException("An internal error occurred").to_response(request_id)
    response.headers.setdefault(REQUEST_ID_HEADER, request_id)
    _observe(request.get(_OPERATION), error_code, time.perf_counter() - started, request.path)
    log.info(
        "api.request",
        request_id=request_id,
        operation=request.get(_OPERATION),
        method=request.method,
        status=response.status,
        error=error_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


def _headers_by_name(request: web.Request) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _throttle_subject(operation: str, params: dict[str, object]) -> str:
    for member in ("roomIdentifier", "identifier", "resourceArn"):
        value = params.get(member)
        if isinstance(value, str):
            return arn_id(value)
    return operation


def _endpoint(ctx: ApiContext, name: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    model = validation.operation_model(name)
    status = int(model.http.get("responseCode", 200))

    async def endpoint(request: web.Request) -> web.Response:
        request[_OPERATION] = name
        body = await request.read()
        sigv4.verify(
            method=request.method,
            raw_path=request.raw_path,
            headers=_headers_by_name(request),
            body=body,
            access_key_id=ctx.settings.access_key_id,
            secret_access_key=ctx.settings.secret_access_key,
            region=ctx.settings.region,
        )
        params = protocol.decode(model, request.raw_path, body)
        validation.validate(name, params)
        if ctx.settings.api_throttling:
            await throttle.check(ctx.store, name, _throttle_subject(name, params))
        result = await handler(ctx, params)
        return json_response(status, result, request[_REQUEST_ID])

    return endpoint


def _route_path(request_uri: str) -> str:
    # URI labels may hold %2F-encoded slashes; match anything and let ``protocol`` parse the raw path.
    return request_uri.replace("{resourceArn}", "{resourceArn:.+}")


async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"}, request[_REQUEST_ID])


def _observe(operation: str | None, error_code: str | None, seconds: float, path: str) -> None:
    """parley_api_requests{operation,code} and parley_api_request_seconds{operation}."""
    if operation is None:
        if path in ("/healthz", "/metrics") or error_code is None:
            return  # probes, scrapes and other routes (the dev demo page) are not API traffic
        operation = "Unknown"
    metrics.API_REQUESTS.labels(operation, error_code or "OK").inc()
    metrics.API_REQUEST_SECONDS.labels(operation).observe(seconds)


async def prometheus_metrics(request: web.Request) -> web.Response:
    """This process's Prometheus metrics (every component in it: ``parley dev`` serves them all)."""
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(settings: Settings, store: ApiStore, bus: ApiBus) -> web.Application:
    """The aiohttp application serving the IVS Chat control-plane API."""
    ctx = ApiContext(settings=settings, store=store, bus=bus)
    # Inside the envelope: a body cut off by its deadline still gets a request log line.
    deadline = limits.body_deadline(limits.ServerLimits.from_settings(settings).body_timeout)
    app = web.Application(middlewares=[_envelope, deadline])
    app[API_CONTEXT] = ctx
    app.router.add_get("/healthz", healthz)
    if settings.metrics_public:  # otherwise only PARLEY_METRICS_PORT serves them; /metrics is an unknown path here
        app.router.add_get("/metrics", prometheus_metrics)
    for name, handler in OPERATIONS.items():
        model = validation.operation_model(name)
        app.router.add_route(model.http["method"], _route_path(model.http["requestUri"]), _endpoint(ctx, name, handler))
    return app
