"""One plic WebSocket connection, as the hub and the server hold it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from shared.features.ratelimit import SlidingWindow


@dataclass(eq=False, slots=True)
class PlicConnection:
    connection_id: str
    user_id: str
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    rate: SlidingWindow
    rooms: set[str] = field(default_factory=set)  # parley room ids this connection receives
    closing: asyncio.Task[object] | None = None  # the close handshake the server started
