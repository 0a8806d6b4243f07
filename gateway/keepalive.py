"""One keepalive for all of a gateway's connections, in place of websockets' task per connection.

websockets pings each connection from a task of its own (a Task, its coroutine and a timer: about
1.5 KiB of every idle connection, and a wake-up per connection per interval). Here one loop, every
``interval`` seconds, writes a ping frame to each open connection through the one send path
(``gateway.wire``: it never waits on a client, and one that stopped reading is aborted), and closes
with 1011 "keepalive ping timeout", as websockets does, a connection that has sent nothing, its
pong included, for ``interval + timeout`` seconds (``TrackedConnection.last_activity``). So a dead
peer is closed about two intervals after it last spoke, as with websockets' own keepalive.

Must not: know rooms or sessions; it sees only the connections it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode, Frame, Opcode

from gateway.wire import is_writable, write_frame

PING = Frame(Opcode.PING, b"").serialize(mask=False)  # unmasked and empty: the same bytes for everyone
TIMEOUT_REASON = "keepalive ping timeout"  # websockets' own words for the same close


class Keepalive:
    def __init__(
        self,
        interval: float,
        timeout: float,
        connections: Callable[[], Iterable[ServerConnection]],
        max_buffer: int,
        close: Callable[[ServerConnection, int, str], None],
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._connections = connections
        self._max_buffer = max_buffer
        self._close = close
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-keepalive")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            self.sweep(loop.time())

    def sweep(self, now: float) -> tuple[int, int]:
        """Ping every open connection, close the silent ones; (pinged, closed)."""
        silent_for = self.interval + self.timeout
        live: list[ServerConnection] = []
        closed = 0
        for ws in self._connections():
            if not is_writable(ws):
                continue
            if now - getattr(ws, "last_activity", now) >= silent_for:
                self._close(ws, CloseCode.INTERNAL_ERROR, TIMEOUT_REASON)
                closed += 1
            else:
                live.append(ws)
        return write_frame(live, PING, self._max_buffer), closed
