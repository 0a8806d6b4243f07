"""parley.loadtest.wsclient, the load generator's lean client, against a real websockets server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http import HTTPStatus

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from parley.loadtest import wsclient


async def _server_side(ws: ServerConnection) -> None:
    async for message in ws:
        assert isinstance(message, str)  # the lean client sends text
        if message == "fragments":
            await ws.send(["frag", "men", "ted"])  # a list is sent as one fragmented message
        elif message == "close 4001":
            await ws.close(4001, "go away")
        else:
            await ws.send(f"echo {ws.subprotocol}: {message}")


def _refuse_bad_tokens(ws: ServerConnection, request: Request) -> Response | None:
    if request.headers.get("Sec-WebSocket-Protocol") == "bad-token":
        return ws.respond(HTTPStatus.UNAUTHORIZED, "no\n")
    return None


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serve(
        _server_side,
        "127.0.0.1",
        0,
        select_subprotocol=lambda ws, offered: offered[0],
        process_request=_refuse_bad_tokens,
        ping_interval=0.1,  # the client must answer these or the server drops it
        ping_timeout=0.3,
    ) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def _connected(url: str) -> tuple[wsclient.LeanClient, asyncio.Queue[bytes]]:
    received: asyncio.Queue[bytes] = asyncio.Queue()
    client = await wsclient.connect(url, "tok-1", received.put_nowait, timeout=5)
    return client, received


async def test_messages_go_both_ways_and_pings_keep_it_open(url: str) -> None:
    client, received = await _connected(url)
    client.send_text("hello")
    assert await asyncio.wait_for(received.get(), 5) == b"echo tok-1: hello"
    await asyncio.sleep(1.0)  # ten server pings later
    client.send_text("still here")
    assert await asyncio.wait_for(received.get(), 5) == b"echo tok-1: still here"
    await client.close()
    assert client.closed.done() and client.abnormal_close is None


async def test_a_fragmented_message_arrives_whole(url: str) -> None:
    client, received = await _connected(url)
    client.send_text("fragments")
    assert await asyncio.wait_for(received.get(), 5) == b"fragmented"
    await client.close()


async def test_a_refused_handshake_reports_the_http_status(url: str) -> None:
    with pytest.raises(wsclient.HandshakeFailed) as failure:
        await wsclient.connect(url, "bad-token", lambda _: None, timeout=5)
    assert failure.value.status == 401


async def test_a_server_close_is_reported_with_its_code(url: str) -> None:
    client, _ = await _connected(url)
    client.send_text("close 4001")
    await asyncio.wait_for(asyncio.shield(client.closed), 5)
    assert client.abnormal_close == "4001"
    with pytest.raises(Exception):  # noqa: B017 - websockets' InvalidState: nothing more can be sent
        client.send_text("after close")
