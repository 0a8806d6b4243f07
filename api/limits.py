"""The control plane's read deadlines and per-client connection cap: ``shared.http_limits`` with
the api's own error, log event and refusal counter.

The bounds are the ``PARLEY_API_*`` settings (:meth:`ServerLimits.from_settings`). A body cut
off by its deadline closes the connection without an answer: HTTP/1.1 clients (urllib3 under
boto3 among them) read the response only once they have sent the whole body, so a 408 would mostly
go unread, and a closed connection is a retryable connection error to botocore. The handler
waiting on the body wakes with :class:`RequestTimeout`, which names the outcome in the request log
and ``parley_api_requests``. ``parley api`` and ``parley dev`` both reach :func:`serve` through
``parley.embedded.ApiServer``.
"""

from __future__ import annotations

from typing import ClassVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.errors import ApiError
from shared import http_limits, metrics
from shared.http_limits import ServerLimits

__all__ = ["RequestTimeout", "ServerLimits", "body_deadline", "serve"]


class RequestTimeout(ApiError):
    """The body did not arrive in time. The connection is already closed when this is raised, so it
    is never delivered; it names the outcome in the request log and ``parley_api_requests``."""

    code: ClassVar[str] = "RequestTimeout"  # S3's name for the same condition
    status: ClassVar[int] = 408


def body_deadline(seconds: float) -> Middleware:
    """Middleware: close the connection if the request body is not complete ``seconds`` after its head
    (logged ``api.body_timeout``)."""
    return http_limits.body_deadline(seconds, RequestTimeout, event="api.body_timeout")


async def serve(app: web.Application, host: str, port: int, limits: ServerLimits) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` within ``limits``; the runner (to clean up) and the bound port.

    The body deadline is a middleware, so ``app`` carries it itself (``api.app.create_app``).
    """
    return await http_limits.serve(app, host, port, limits, on_refused=metrics.API_CONNECTIONS_REFUSED.inc)
