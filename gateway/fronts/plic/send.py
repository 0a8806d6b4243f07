"""The plic front's one send path: ``gateway.wire``'s policy for aiohttp WebSockets.

The same bytes for every receiver (``gateway.wire.text_frame``: unmasked, unfragmented, no
per-message deflate), written straight to each transport, never awaited. A transport holding more
than ``max_buffer`` bytes belongs to a client that stopped reading: it is aborted and counted in
``parley_slow_consumer_disconnects_total``, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from gateway.wire import text_frame
from shared import metrics
from shared.features.ratelimit import SlidingWindow

log = structlog.get_logger("gateway.plic")


@dataclass(eq=False, slots=True)
class PlicConnection:
    connection_id: str
    user_id: str
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    rate: SlidingWindow
    rooms: set[str] = field(default_factory=set)  # parley room ids this connection receives
    closing: asyncio.Task[object] | None = None  # the close handshake the server started


def writable(conn: PlicConnection) -> bool:
    return not conn.ws.closed and not conn.transport.is_closing()


def abort_slow(conn: PlicConnection) -> None:
    if conn.transport.is_closing():
        return
    metrics.SLOW_CONSUMER_DISCONNECTS.inc()
    log.info("slow consumer aborted", buffered=conn.transport.get_write_buffer_size())
    conn.transport.abort()


def write(conns: Iterable[PlicConnection], raw: bytes, max_buffer: int) -> int:
    """Write the wire bytes ``raw`` to every writable connection; how many got it."""
    sent = 0
    for conn in conns:
        if not writable(conn):
            continue
        if conn.transport.get_write_buffer_size() > max_buffer:
            abort_slow(conn)
            continue
        conn.transport.write(raw)
        sent += 1
    return sent


def send(conn: PlicConnection, payload: bytes, max_buffer: int) -> bool:
    return write((conn,), text_frame(payload), max_buffer) == 1
