"""The one send path of the fronts served by aiohttp (groupschat, plic): ``gateway.wire``'s policy
for aiohttp WebSockets.

The same bytes for every receiver (``gateway.wire.text_frame``: unmasked, unfragmented, no
per-message deflate), written straight to each transport, never awaited. A transport holding more
than ``max_buffer`` bytes belongs to a client that stopped reading: it is aborted and counted in
``parley_slow_consumer_disconnects_total``, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol, TypeVar

import structlog
from aiohttp import web

from gateway.wire import text_frame
from shared import metrics

log = structlog.get_logger("gateway.fronts")


class AiohttpSocket(Protocol):
    """A front's connection on aiohttp: its WebSocket and the transport under it."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport


Socket = TypeVar("Socket", bound=AiohttpSocket)


def writable(conn: AiohttpSocket) -> bool:
    return not conn.ws.closed and not conn.transport.is_closing()


def abort_slow(conn: AiohttpSocket) -> None:
    if conn.transport.is_closing():
        return
    metrics.SLOW_CONSUMER_DISCONNECTS.inc()
    log.info("slow consumer aborted", buffered=conn.transport.get_write_buffer_size())
    conn.transport.abort()


def write(conns: Iterable[Socket], raw: bytes, max_buffer: int) -> int:
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


def send(conn: AiohttpSocket, payload: bytes, max_buffer: int) -> bool:
    return write((conn,), text_frame(payload), max_buffer) == 1
