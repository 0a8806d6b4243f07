"""The load test's lean WebSocket client: websockets' Sans-I/O protocol on a bare asyncio
Protocol, frames handed to a callback.

websockets' asyncio client pays a future, a task wake-up and an assembler step for every frame
``recv()`` returns. A generator receiving 50k frames/s on the cores of the service it measures
spent 0.8 of 2 cores there, and the service's latency showed it. Here each TCP read is parsed
by websockets' own :class:`~websockets.client.ClientProtocol` (handshake, framing, ping/pong
and the closing handshake stay the library's) and every text or binary message goes straight to
``on_message`` as bytes, with no await in between.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

OK_CLOSE_CODES = (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY)
CLOSE_TIMEOUT_S = 10.0


class HandshakeFailed(Exception):
    """The server did not switch protocols; ``status`` is its HTTP status, if it sent one."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class LeanClient(asyncio.Protocol):
    def __init__(self, protocol: ClientProtocol, on_message: Callable[[bytes], None]) -> None:
        self._ws = protocol
        self._on_message = on_message
        self._fragments: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._closing_by_us = False
        self._abort_timer: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.opened.add_done_callback(_retrieved)  # a late failure after connect() gave up is no error
        self.closed: asyncio.Future[None] = loop.create_future()

    # --- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport has asyncio.Transport's methods without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        self._ws.send_request(self._ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Response):
                self._on_response(event)
        self._flush()

    def eof_received(self) -> None:
        self._ws.receive_eof()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ws.receive_eof()  # idempotent; the state is CLOSED from here on
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed(None, f"connection lost during the handshake: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self._abort_timer is not None:
            self._abort_timer.cancel()

    # --- what the load generator uses --------------------------------------------------------
    def send_text(self, text: str) -> None:
        """Queue one text message; raises if the connection is no longer open."""
        self._ws.send_text(text.encode())
        self._flush()

    @property
    def abnormal_close(self) -> str | None:
        """Why the server ended the connection, if it was not a normal close we asked for:
        the close code it sent, or ``"no_close_frame"``."""
        if self._closing_by_us or self._ws.state is not State.CLOSED:
            return None
        received = self._ws.close_rcvd
        if received is None:
            return "no_close_frame"
        return None if received.code in OK_CLOSE_CODES else str(received.code)

    async def close(self) -> None:
        """The closing handshake, then the TCP close (forced after ``CLOSE_TIMEOUT_S``)."""
        self._closing_by_us = True
        if self._ws.state is State.OPEN:
            self._ws.send_close(CloseCode.NORMAL_CLOSURE)
            self._flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(self.closed)
        if self._transport is not None and not self.closed.done():
            self._transport.abort()

    # --- internals ---------------------------------------------------------------------------
    def _on_response(self, response: Response) -> None:
        failure = self._ws.handshake_exc
        if failure is None:
            self.opened.set_result(None)
            return
        status = failure.response.status_code if isinstance(failure, InvalidStatus) else response.status_code
        self.opened.set_exception(HandshakeFailed(status, str(failure)))

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            if frame.fin:
                self._on_message(bytes(frame.data))
            else:
                self._fragments = [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                message, self._fragments = b"".join(self._fragments), []
                self._on_message(message)
        # PING, PONG, CLOSE: the Sans-I/O protocol already queued the answer (see _flush)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self._abort_timer is None and self._ws.close_expected():
            # The server closes TCP after the closing handshake; don't wait on it forever.
            self._abort_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.abort)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def connect(url: str, token: str, on_message: Callable[[bytes], None], *, timeout: float) -> LeanClient:
    """Open one chat connection: ``token`` is offered as the subprotocol, as the IVS SDKs do."""
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, subprotocols=[Subprotocol(token)], max_size=None)
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            transport, client = await loop.create_connection(
                lambda: LeanClient(protocol, on_message), uri.host, uri.port, ssl=True if uri.secure else None
            )
            await client.opened
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    return client
