"""Writing frames to client sockets: the gateway's one send path and its one back-pressure policy.

Every server → client frame goes through here: fan-out (``write_frame`` to a room's sockets) and
every reply or notice to one socket (``send_frame``: HISTORY, PRESENCE, PONG, ERROR, session
expiry, shutdown, a router's ERROR for one connection). Nothing calls ``ws.send`` or
``websockets.broadcast``.

Serialize once, write the same bytes: server frames are unmasked and parley negotiates no
extensions (no per-message deflate), so a text frame's bytes are identical for every connection.
``websockets.broadcast`` builds and serializes a Frame per connection; at thousands of receivers
per message that dominates the gateway, so the frame is serialized here (with websockets' own
serializer) and written to each transport. Safe because parley never fragments outgoing messages,
which is the only outgoing state websockets' protocol keeps between frames.

The policy: never wait for a client. A frame is written at once to a connection that is open and
whose transport is not closing. A transport already holding more than ``max_buffer`` bytes belongs
to a client that stopped reading: the connection is aborted without a close frame (the IVS SDK
reconnects with a fresh token) and counted in ``parley_slow_consumer_disconnects_total`` — once,
because an aborted transport reports ``is_closing()`` and is skipped from then on (under uvloop it
still reports its buffer right after ``abort()``). Awaiting drain instead (``ws.send``) would stall
the connection's own frame loop, or the whole of ``Gateway.stop``, on one client that stopped
reading, while fan-out to the same socket cannot wait at all.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from shared import metrics

log = structlog.get_logger("gateway")


def text_frame(payload: bytes) -> bytes:
    """The complete wire bytes of an unmasked, final text frame carrying ``payload``."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def is_writable(ws: ServerConnection) -> bool:
    """Open, and not already closing (aborted, or torn down by the peer)."""
    return ws.protocol.state is State.OPEN and not ws.transport.is_closing()


def abort_slow(ws: ServerConnection) -> None:
    """Drop a connection that stopped reading; counted and logged once per connection."""
    transport = ws.transport
    if transport.is_closing():
        return  # already aborted (and counted), or closing anyway
    metrics.SLOW_CONSUMER_DISCONNECTS.inc()
    log.info("slow consumer aborted", buffered=transport.get_write_buffer_size())
    transport.abort()  # no close frame: the SDK reconnects with a fresh token


def write_frame(connections: Iterable[ServerConnection], raw: bytes, max_buffer: int) -> int:
    """Write the wire bytes ``raw`` to every writable connection, aborting those over
    ``max_buffer``; return how many got it."""
    sent = 0
    for ws in connections:
        if not is_writable(ws):
            continue
        transport = ws.transport
        if transport.get_write_buffer_size() > max_buffer:
            abort_slow(ws)
            continue
        transport.write(raw)
        sent += 1
    return sent


def send_frame(ws: ServerConnection, payload: bytes, max_buffer: int) -> bool:
    """Send one encoded frame (UTF-8 JSON from ``shared.protocol.frames``) to one connection, by the same
    policy as fan-out; True if it was written."""
    return write_frame((ws,), text_frame(payload), max_buffer) == 1
