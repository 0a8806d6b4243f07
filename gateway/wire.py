"""Writing one frame to many sockets: serialize the WebSocket frame once, write the same bytes.

Server frames are unmasked and parley negotiates no extensions (no per-message deflate), so a
text frame's bytes are identical for every connection. ``websockets.broadcast`` builds and
serializes a Frame per connection; at thousands of receivers per message that dominates the
gateway, so fan-out serializes once here (with websockets' own serializer) and writes the bytes
to each transport. Safe because parley never fragments outgoing messages, which is the only
outgoing state websockets' protocol keeps between frames.

A receiver that stops reading would make its transport buffer grow without bound; past
``max_buffer`` bytes the connection is aborted without a close frame, which the IVS SDK answers
by reconnecting with a fresh token.
"""

from __future__ import annotations

from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State


def text_frame(payload: bytes) -> bytes:
    """The complete wire bytes of an unmasked, final text frame carrying ``payload``."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def write_frame(
    connections: Iterable[ServerConnection], raw: bytes, max_buffer: int
) -> tuple[int, list[ServerConnection]]:
    """Write ``raw`` to every open connection; return how many got it and the ones too slow."""
    sent = 0
    slow: list[ServerConnection] = []
    for ws in connections:
        if ws.protocol.state is not State.OPEN:
            continue
        transport = ws.transport
        if transport.get_write_buffer_size() > max_buffer:
            slow.append(ws)
            continue
        transport.write(raw)
        sent += 1
    return sent, slow
