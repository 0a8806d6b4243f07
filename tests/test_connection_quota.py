"""The account's concurrent-connection quota (PARLEY_MAX_CONNECTIONS) under concurrency: real
WebSocket upgrades against real gateways, on the memory and on the real (Redis) backends.

The quota is a reservation taken in the Store at the handshake (``gateway.admission``), so it
holds however many upgrades race and on however many gateways; these tests also check that every
way a reserved handshake can end gives its reservation back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from parley.embedded import Node
from parley.testing.cluster import suite_settings
from shared.config import Settings
from tests.nodes import make_room, mint_token, ws_url

QUOTA = 3
GROUP = "gateway-connections"  # gateway.server.CONNECTIONS_GROUP


@pytest.fixture
def settings(namespace: str) -> Settings:
    return suite_settings(namespace).with_(max_connections=QUOTA)


# Every connection a test opens, closed at its end even if it fails (before the node stops).
_opened: list[ClientConnection] = []


@pytest.fixture(autouse=True)
async def _close_leftovers(node: Node) -> AsyncIterator[None]:
    yield
    await _close(_opened)
    _opened.clear()


async def _upgrade(url: str, token: str) -> ClientConnection | int:
    """An open connection, or the HTTP status the upgrade was refused with."""
    try:
        ws = await connect(url, subprotocols=[Subprotocol(token)], open_timeout=10)
    except InvalidStatus as refused:
        return refused.response.status_code
    _opened.append(ws)
    return ws


async def _race(urls: list[str], tokens: list[str]) -> tuple[list[ClientConnection], list[int]]:
    """Upgrade with every token at once (token i on ``urls[i % len(urls)]``)."""
    results = await asyncio.gather(*(_upgrade(urls[i % len(urls)], t) for i, t in enumerate(tokens)))
    return [r for r in results if not isinstance(r, int)], [r for r in results if isinstance(r, int)]


def _tokens(node: Node, room: object, count: int, prefix: str = "u") -> list[str]:
    return [mint_token(node, room, f"{prefix}{n}") for n in range(count)]  # type: ignore[arg-type]


async def _reserved(node: Node) -> int:
    return sum((await node.store.counters.reports(GROUP)).values())


async def _settles(node: Node, expected: int, timeout: float = 10.0) -> None:
    """Wait until the store's reservations (all gateways) come to ``expected``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (reserved := await _reserved(node)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{reserved} reserved, expected {expected}"
        await asyncio.sleep(0.02)


async def _close(connections: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in connections))


@contextlib.asynccontextmanager
async def _second_gateway(node: Node, gateway_id: str) -> AsyncIterator[Node]:
    """Another gateway (its own Redis store and bus, as another process has) on ``node``'s namespace."""
    from parley.runtime import real_backends

    settings = node.settings.with_(gateway_id=gateway_id)
    store, bus = real_backends(settings)
    other = Node(settings, store, bus, api=False, router=False, reviewer=False)
    await other.start(gateway_port=0)
    try:
        yield other
    finally:
        await _close(_opened)  # even when the test failed: a gateway stop waits for its connections
        await other.stop()


async def test_concurrent_upgrades_admit_exactly_the_quota_and_closing_frees_it(node: Node) -> None:
    room = await make_room(node)
    admitted, refused = await _race([ws_url(node)], _tokens(node, room, 20))
    assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])
    await _close(admitted)
    await _settles(node, 0)  # every reservation released
    admitted, refused = await _race([ws_url(node)], _tokens(node, room, 20, prefix="again"))
    assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])
    await _close(admitted)


async def test_periodic_reports_do_not_undo_reservations_in_flight(node: Node) -> None:
    """Reports sent all through a race of upgrades (the 1 s loop may land anywhere in one) land
    between reservations, their answers and the joins: none of them lets one more in."""
    assert node.gateway is not None
    gateway = node.gateway
    room = await make_room(node)
    racing = asyncio.ensure_future(_race([ws_url(node)], _tokens(node, room, 20)))
    while not racing.done():
        await gateway.quota.report()
        await asyncio.sleep(0)
    admitted, refused = racing.result()
    assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])
    await gateway.quota.report()
    assert await _reserved(node) == QUOTA
    await _close(admitted)
    await _settles(node, 0)


async def test_a_report_counts_connections_admitted_but_not_joined_yet(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection holds its slot from the handshake: the gateway's report (its count, which
    sets the store's value) must not drop the ones still on their way to the join."""
    assert node.gateway is not None
    gateway = node.gateway
    room = await make_room(node)
    gate = asyncio.Event()
    join = gateway.presence.join

    async def held_back_join(*args: object) -> None:
        await gate.wait()
        await join(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(gateway.presence, "join", held_back_join)
    try:
        admitted, refused = await _race([ws_url(node)], _tokens(node, room, 20))
        assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])
        await gateway.quota.report()
        admitted_later, refused = await _race([ws_url(node)], _tokens(node, room, 5, prefix="later"))
        assert (len(admitted_later), refused) == (0, [503] * 5)
    finally:
        gate.set()  # even on failure: a gateway stop waits for these handlers
    await _close(admitted)
    await _settles(node, 0)


@pytest.mark.parametrize("node", [pytest.param("real", marks=pytest.mark.integration)], indirect=True)
async def test_two_gateways_share_one_quota(node: Node) -> None:
    room = await make_room(node)
    async with _second_gateway(node, "gw-quota-b") as other:
        urls = [ws_url(node), ws_url(other)]
        admitted, refused = await _race(urls, _tokens(node, room, 20))
        assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])
        await _close(admitted)
        await _settles(node, 0)
        admitted, refused = await _race(urls, _tokens(node, room, 20, prefix="again"))
        assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])
        await _close(admitted)


async def test_a_reused_token_refused_after_reserving_gives_the_slot_back(node: Node) -> None:
    room = await make_room(node)
    token = mint_token(node, room, "first")
    first = await _upgrade(ws_url(node), token)
    assert not isinstance(first, int)
    for _ in range(10):  # each reserves a slot, then finds the token used: a leak would say 503 by the third
        assert await _upgrade(ws_url(node), token) == 401
    await _settles(node, 1)
    admitted, refused = await _race([ws_url(node)], _tokens(node, room, 5))
    assert (len(admitted), sorted(set(refused))) == (QUOTA - 1, [503])
    await _close([first, *admitted])
    await _settles(node, 0)


async def _abandon(port: int, token: str) -> asyncio.StreamWriter:
    """Send an upgrade request; the caller resets the connection before reading the answer."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: " + token.encode() + b"\r\n\r\n"
    )
    await writer.drain()
    return writer


def _reset(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER 0: close sends RST, so the server sees the connection lost at once
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def test_a_handshake_the_client_abandons_gives_the_slot_back(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clients send their upgrade requests and go away while the gateway admits them (their
    slots reserved, the token claims held back): no answer can be sent and no connection handler
    runs, and the slots must still come back."""
    assert node.gateway is not None
    room = await make_room(node)
    gate, claims = asyncio.Event(), []
    claim = node.store.marks.claim

    async def held_back_claim(key: str, ttl_ms: int) -> bool:
        claims.append(key)
        await gate.wait()
        return await claim(key, ttl_ms)

    monkeypatch.setattr(node.store.marks, "claim", held_back_claim)
    writers = [await _abandon(node.gateway.port, mint_token(node, room, f"gone{n}")) for n in range(QUOTA + 2)]
    while len(claims) < len(writers):  # every one reserved (or was refused) and waits for its claim
        await asyncio.sleep(0.01)
    for writer in writers:
        _reset(writer)
    await asyncio.sleep(0.1)  # (the gateway sees the resets; waiting longer is no stronger a test)
    gate.set()
    monkeypatch.undo()
    await _settles(node, 0)
    assert node.gateway.quota.held == 0
    admitted, refused = await _race([ws_url(node)], _tokens(node, room, 5))
    assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])


async def test_a_connection_that_fails_before_joining_gives_the_slot_back(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert node.gateway is not None
    room = await make_room(node)

    async def broken_join(*args: object) -> None:
        raise RuntimeError("presence is down")

    monkeypatch.setattr(node.gateway.presence, "join", broken_join)
    for n in range(QUOTA + 2):
        ws = await _upgrade(ws_url(node), mint_token(node, room, f"broken{n}"))
        assert not isinstance(ws, int)
        await ws.wait_closed()  # the handler failed: the server closes the connection
    monkeypatch.undo()
    await _settles(node, 0)
    admitted, refused = await _race([ws_url(node)], _tokens(node, room, 5))
    assert (len(admitted), sorted(set(refused))) == (QUOTA, [503])
    await _close(admitted)
