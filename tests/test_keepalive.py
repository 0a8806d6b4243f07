"""One keepalive for every connection of a gateway (gateway/keepalive.py): the sweep's decisions on
fake connections, and over real sockets a client that stops answering is closed 1011 while one that
answers stays, on the IVS gateway."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from websockets.frames import CloseCode
from websockets.protocol import State

from gateway.keepalive import PING, TIMEOUT_REASON, Keepalive
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from tests.nodes import make_room, mint_token, ws_url


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.written.append(data)


def fake(last_activity: float, state: State = State.OPEN) -> Any:
    return SimpleNamespace(
        protocol=SimpleNamespace(state=state), transport=FakeTransport(), last_activity=last_activity
    )


def test_the_sweep_pings_the_live_and_closes_the_silent() -> None:
    closed: list[tuple[Any, int, str]] = []
    recent, silent, closing = fake(95.0), fake(79.0), fake(0.0, State.CLOSING)
    keepalive = Keepalive(
        10, 10, lambda: [recent, silent, closing], 1 << 20, lambda ws, c, r: closed.append((ws, c, r))
    )
    assert keepalive.sweep(now=100.0) == (1, 1)
    assert recent.transport.written == [PING] and silent.transport.written == []
    assert closed == [(silent, CloseCode.INTERNAL_ERROR, TIMEOUT_REASON)]
    assert closing.transport.written == []  # a connection already closing is left to its close


async def test_a_client_that_stops_answering_is_closed_1011_and_one_that_answers_stays() -> None:
    settings = Settings(token_secret="k" * 40, ping_interval=0.2)
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), router_all_shards=True)
    await node.start(gateway_port=0)
    try:
        room = await make_room(node)
        answering = await ChatClient.open(ws_url(node), mint_token(node, room, "a"))
        silent = await ChatClient.open(ws_url(node), mint_token(node, room, "s"))
        silent.ws.transport.pause_reading()  # it no longer sees pings, so never answers them
        await asyncio.sleep(1.0)  # five intervals: the silent one went past interval + timeout
        assert node.gateway is not None
        state = {ws.remote_address[1]: ws.protocol.state for ws in node.gateway.fanout.connections()}
        assert state[answering.ws.local_address[1]] is State.OPEN
        assert (
            state.get(silent.ws.local_address[1], State.CLOSED) is not State.OPEN
        )  # closing: its close awaits the peer
        await answering.send_message("still here")
        assert (await answering.expect(Type="MESSAGE"))["Content"] == "still here"
        silent.ws.transport.resume_reading()
        await asyncio.wait_for(silent.ws.wait_closed(), 5)
        assert silent.ws.close_code == CloseCode.INTERNAL_ERROR
        await answering.close()
    finally:
        await node.stop()
