"""Several ``Sec-WebSocket-Protocol`` headers in one upgrade.

RFC 6455 lets a client send the header more than once; per RFC 7230 that means the same as one
comma-joined header. The first value is the chat token. Before: ``headers.get()`` raised
MultipleValuesError, an HTTP 500 and a traceback for anyone, no token needed.
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from gateway.admission import offered_token
from parley.embedded import Node
from tests.nodes import make_room, mint_token


@pytest.mark.parametrize(
    ("values", "token"),
    [
        ([], None),
        (["tok"], "tok"),
        (["tok, other"], "tok"),
        (["tok", "other"], "tok"),
        (["tok,other", "third"], "tok"),
        ([", tok"], "tok"),  # empty list elements are ignored (RFC 7230 §7), as websockets does
        ([""], None),
        (["not a token"], None),  # not a list of RFC 7230 tokens: websockets would refuse it too
        (["tok", "not a token"], None),
        (["", "tok"], None),  # an empty header: websockets refuses the handshake (400)
    ],
)
def test_the_offered_token_is_the_first_value_across_every_header(values: list[str], token: str | None) -> None:
    assert offered_token(values) == token


async def _upgrade(node: Node, protocols: list[str], extra: tuple[str, ...] = ()) -> tuple[int, list[tuple[str, str]]]:
    """A raw upgrade request with one ``Sec-WebSocket-Protocol`` header per value; returns the
    response's status and headers (websockets' client sends one header, so it cannot do this)."""
    assert node.gateway is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", node.gateway.port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        f"Host: 127.0.0.1:{node.gateway.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"Sec-WebSocket-Protocol: {value}" for value in protocols),
        *extra,
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    status_line, *header_lines = head.decode().split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in header_lines if line]
    return int(status_line.split()[1]), headers  # type: ignore[return-value]


async def test_garbage_in_two_headers_is_401_not_500(node: Node) -> None:
    assert (await _upgrade(node, ["garbage", "more-garbage"]))[0] == 401


async def test_a_valid_token_first_of_two_headers_is_admitted_and_echoed(node: Node) -> None:
    room = await make_room(node)
    token = mint_token(node, room, "alice")
    status, headers = await _upgrade(node, [token, "x"])
    assert status == 101
    assert [value for name, value in headers if name.lower() == "sec-websocket-protocol"] == [token]


async def test_a_valid_token_after_another_value_is_not_the_token(node: Node) -> None:
    room = await make_room(node)
    assert (await _upgrade(node, ["x", mint_token(node, room, "alice")]))[0] == 401


@pytest.mark.parametrize(
    "duplicate",
    [
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==",
        "Sec-WebSocket-Version: 13",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Host: example.com",
        "Origin: https://a.example",
        "Sec-WebSocket-Extensions: permessage-deflate",
    ],
)
async def test_no_other_duplicated_handshake_header_is_a_500(node: Node, duplicate: str) -> None:
    room = await make_room(node)
    status, _ = await _upgrade(node, [mint_token(node, room, "alice")], extra=(duplicate,))
    # websockets' own checks: accepted, or refused as a broken upgrade (400; "Upgrade: websocket,
    # websocket" is not a websocket upgrade: 426)
    assert status in (101, 400, 426), status
