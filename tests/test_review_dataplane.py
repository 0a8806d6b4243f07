"""Message review through the real data plane: WebSocket → gateway → bus → router → bus →
reviewer → a real HTTP handler on 127.0.0.1 → verdict → room. Every test runs on the in-memory
bus and on RabbitMQ/Redis (like tests/test_dataplane.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from parley.testing.cluster import free_port
from reviewer.config import ReviewConfig
from shared.address_policy import parse_networks
from shared.config import Settings
from shared.engine.bus import Bus
from shared.engine.memory import MemoryBus, MemoryStore
from shared.engine.store import Store
from shared.protocol.models import Room
from tests.nodes import BACKENDS
from tests.nodes import make_room as _room
from tests.nodes import mint_token as _token
from tests.nodes import ws_url as _url

MAPPED_ARN = "arn:aws:lambda:us-east-1:123456789012:function:parley-test-mapped"
NodeFactory = Callable[..., Awaitable[Node]]


class Handler:
    """A review handler over HTTP with one route per behaviour; records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.base = ""
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{behaviour}", self._review)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.base = f"http://127.0.0.1:{port}"

    def url(self, behaviour: str) -> str:
        return f"{self.base}/{behaviour}"

    async def _review(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        content = body["Content"]
        behaviour = request.match_info["behaviour"]
        if behaviour == "upper":
            return web.json_response({"ReviewResult": "ALLOW", "Content": content.upper(), "Attributes": {"seen": "1"}})
        if behaviour == "keep":  # no Attributes: the message keeps its own
            return web.json_response({"ReviewResult": "ALLOW", "Content": content})
        if behaviour == "deny":
            return web.json_response(
                {"ReviewResult": "DENY", "Content": content, "Attributes": {"Reason": "denied for moderation"}}
            )
        if behaviour == "delay":  # "name:ms" waits ms, then allows
            await asyncio.sleep(int(content.rsplit(":", 1)[1]) / 1000)
            return web.json_response({"ReviewResult": "ALLOW", "Content": content})
        if behaviour == "slow":
            await asyncio.sleep(0.4)
            return web.json_response({"ReviewResult": "ALLOW", "Content": "too late"})
        if behaviour == "fail":
            return web.Response(status=500, text="boom")
        if behaviour == "malformed":
            return web.Response(text='{"ReviewResult": "ALLOW", ', content_type="application/json")
        if behaviour == "bad-result":
            return web.json_response({"ReviewResult": "MAYBE", "Content": content})
        if behaviour == "too-long":
            return web.json_response({"ReviewResult": "ALLOW", "Content": content * 100})
        if behaviour == "big-attributes":
            return web.json_response({"ReviewResult": "ALLOW", "Content": content, "Attributes": {"k": "v" * 1100}})
        return web.Response(status=404)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def handler() -> AsyncIterator[Handler]:
    server = Handler()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=BACKENDS)
async def make_node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[NodeFactory]:
    nodes: list[Node] = []
    config = ReviewConfig(
        lambda_map={MAPPED_ARN: "parley:deny?reason=mapped+lambda"},
        allowed_networks=parse_networks(settings.review_allowed_networks),  # the Handler listens on loopback
    )
    shared: dict[str, Any] = {}

    async def make(**kw: Any) -> Node:
        store: Store
        bus: Bus
        if request.param == "memory":
            store, bus = MemoryStore(), MemoryBus(settings.shards)
            node_settings = settings
        else:
            from parley.runtime import real_backends

            node_settings = settings.with_(
                redis_url=request.getfixturevalue("redis_url"), amqp_url=request.getfixturevalue("amqp_url")
            )
            store, bus = real_backends(node_settings)
        shared.setdefault("destroy", (store, bus))
        node = Node(node_settings, store, bus, api=False, router_all_shards=True, review_config=config, **kw)
        await node.start(gateway_port=0)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.stop(close_backends=False)
    if request.param == "real" and "destroy" in shared:
        store, bus = shared["destroy"]
        await bus.destroy()
        await store.destroy()
    for node in nodes:
        await node.bus.close()
        await node.store.close()


def _count(metric: str, uri: str) -> float:
    return REGISTRY.get_sample_value(f"{metric}_total", {"Uri": uri}) or 0.0


async def _pair(node: Node, **room: Any) -> tuple[Room, ChatClient, ChatClient]:
    """A room with a sender and another reader in it."""
    created = await _room(node, **room)
    sender = await ChatClient.open(_url(node), _token(node, created, "alice"))
    reader = await ChatClient.open(_url(node), _token(node, created, "bob", caps=()))
    return created, sender, reader


async def test_handler_sees_the_ivs_request_and_its_verdict_is_applied(
    make_node: NodeFactory, handler: Handler
) -> None:
    node = await make_node()
    upper, u_sender, u_reader = await _pair(node, review_uri=handler.url("upper"))
    keep, k_sender, k_reader = await _pair(node, review_uri=handler.url("keep"))
    deny, d_sender, d_reader = await _pair(node, review_uri=handler.url("deny"), review_fallback="ALLOW")

    rid = await u_sender.send_message("hello", Attributes={"orig": "x"})
    echo = await u_sender.expect(Type="MESSAGE", RequestId=rid)
    assert (echo["Content"], echo["Attributes"]) == ("HELLO", {"seen": "1"})
    assert await u_reader.expect(Type="MESSAGE") == echo
    sent = handler.requests[-1]
    assert sent == {
        "Content": "hello",
        "MessageId": echo["Id"],  # the reviewed message is delivered under the Id the handler saw
        "RoomArn": upper.arn,
        "Attributes": {"orig": "x"},
        "Sender": {"UserId": "alice", "Ip": sent["Sender"]["Ip"], "Attributes": {"displayName": "Alice"}},
    }
    assert sent["Sender"]["Ip"] == "127.0.0.1"

    rid = await k_sender.send_message("as is", Attributes={"orig": "kept"})
    echo = await k_reader.expect(Type="MESSAGE")
    assert (echo["RequestId"], echo["Content"], echo["Attributes"]) == (rid, "as is", {"orig": "kept"})

    rid = await d_sender.send_message("nope")
    error = await d_sender.expect(Type="ERROR")
    assert (error["RequestId"], error["ErrorCode"]) == (rid, 406)
    assert "denied for moderation" in error["ErrorMessage"]
    assert error["Id"] == handler.requests[-1]["MessageId"]
    rid = await k_sender.send_message("after")  # the denied message never reached anyone
    assert (await k_reader.expect(Type="MESSAGE"))["RequestId"] == rid
    assert [f for f in d_reader.frames + await d_reader.drain(0.3) if f["Type"] == "MESSAGE"] == []
    assert [f["Type"] for f in d_sender.frames] == ["ERROR"]
    for client in (u_sender, u_reader, k_sender, k_reader, d_sender, d_reader):
        await client.close()


FAILURES = {  # behaviour -> metric it counts
    "slow": "InvocationErrors",
    "fail": "InvocationErrors",
    "refused": "InvocationErrors",
    "malformed": "ResponseValidationErrors",
    "bad-result": "ResponseValidationErrors",
    "too-long": "ResponseValidationErrors",
    "big-attributes": "ResponseValidationErrors",
}


async def test_handler_failures_apply_the_fallback_and_are_counted(make_node: NodeFactory, handler: Handler) -> None:
    node = await make_node()
    refused = f"http://127.0.0.1:{free_port()}/review"  # nothing listens there
    uris = {behaviour: refused if behaviour == "refused" else handler.url(behaviour) for behaviour in FAILURES}
    before = {b: (_count("InvocationErrors", u), _count("ResponseValidationErrors", u)) for b, u in uris.items()}
    cases = []
    for behaviour, uri in uris.items():
        for fallback in ("ALLOW", "DENY"):
            room, sender, reader = await _pair(
                node, review_uri=uri, review_fallback=fallback, maximum_message_length=20
            )
            cases.append((behaviour, fallback, sender, reader))
    started = time.monotonic()
    rids = [await sender.send_message(f"orig {behaviour}") for behaviour, _, sender, _ in cases]
    for (behaviour, fallback, sender, reader), rid in zip(cases, rids, strict=True):
        frame = await sender.recv(timeout=3)
        assert frame["RequestId"] == rid, behaviour
        if fallback == "ALLOW":  # the original message, unchanged
            assert (frame["Type"], frame["Content"]) == ("MESSAGE", f"orig {behaviour}"), behaviour
            assert (await reader.expect(Type="MESSAGE"))["Id"] == frame["Id"]
        else:
            assert (frame["Type"], frame["ErrorCode"]) == ("ERROR", 406), behaviour
    assert time.monotonic() - started < 1.5  # the 200 ms budget, not the slow handler's 400 ms
    for behaviour, uri in uris.items():
        invocation, validation = _count("InvocationErrors", uri), _count("ResponseValidationErrors", uri)
        if FAILURES[behaviour] == "InvocationErrors":
            assert (invocation - before[behaviour][0], validation - before[behaviour][1]) == (2, 0), behaviour
        else:
            assert (invocation - before[behaviour][0], validation - before[behaviour][1]) == (0, 2), behaviour
    for _, _, sender, reader in cases:
        assert not [f for f in await reader.drain(0.05) if f["Type"] == "MESSAGE" and f["Content"] == "too late"]
        await sender.close()
        await reader.close()


async def test_slow_room_does_not_stall_others_and_order_is_kept(make_node: NodeFactory, handler: Handler) -> None:
    """Room A's handler answers its earlier messages last (up to 180 ms); room B's is quick. B is
    delivered while A is still under review, and A is delivered in send order anyway."""
    node = await make_node()
    room_a, a_sender, a_reader = await _pair(node, review_uri=handler.url("delay"), maximum_message_rate_per_second=100)
    room_b, b_sender, b_reader = await _pair(node, review_uri=handler.url("delay"))
    delays = [180, 150, 120, 90, 60, 30, 0]
    sent = [f"a{n}:{delay}" for n, delay in enumerate(delays)]
    for content in sent:
        await a_sender.send_message(content)
    await asyncio.sleep(0.02)
    await b_sender.send_message("b0:0")
    assert (await b_reader.expect(Type="MESSAGE"))["Content"] == "b0:0"
    # B is out while A's first message is still under review (180 ms): no A frame has arrived yet.
    # (An order check, not a latency threshold, so a busy machine does not make it flaky.)
    with pytest.raises(asyncio.TimeoutError):
        await a_reader.recv(timeout=0.001)
    received = [(await a_reader.expect(Type="MESSAGE", timeout=3))["Content"] for _ in sent]
    assert received == sent
    for client in (a_sender, a_reader, b_sender, b_reader):
        await client.close()


async def test_builtin_and_mapped_lambda_handlers(make_node: NodeFactory) -> None:
    node = await make_node()
    _, m_sender, m_reader = await _pair(node, review_uri="parley:blocklist?words=darn&action=mask")
    _, l_sender, _ = await _pair(node, review_uri="parley:links?allow=example.com")
    _, lam_sender, _ = await _pair(node, review_uri=MAPPED_ARN)
    unmapped = "arn:aws:lambda:us-east-1:123456789012:function:parley-test-unmapped"
    _, u_sender, _ = await _pair(node, review_uri=unmapped, review_fallback="DENY")
    before = _count("InvocationErrors", unmapped)

    await m_sender.send_message("well darn it")
    assert (await m_reader.expect(Type="MESSAGE"))["Content"] == "well **** it"
    await l_sender.send_message("see https://example.com/ok")
    assert (await l_sender.expect(Type="MESSAGE"))["Content"] == "see https://example.com/ok"
    await l_sender.send_message("buy at http://spam.io")
    error = await l_sender.expect(Type="ERROR")
    assert error["ErrorCode"] == 406 and "Links are not allowed" in error["ErrorMessage"]
    await lam_sender.send_message("hi")
    error = await lam_sender.expect(Type="ERROR")
    assert error["ErrorCode"] == 406 and "mapped lambda" in error["ErrorMessage"]
    await u_sender.send_message("hi")
    assert (await u_sender.expect(Type="ERROR"))["ErrorCode"] == 406
    assert _count("InvocationErrors", unmapped) == before + 1
    for client in (m_sender, m_reader, l_sender, lam_sender, u_sender):
        await client.close()


async def test_without_any_reviewer_the_fallback_applies(make_node: NodeFactory, handler: Handler) -> None:
    node = await make_node(reviewer=False)
    _, a_sender, _ = await _pair(node, review_uri=handler.url("upper"), review_fallback="ALLOW")
    _, d_sender, _ = await _pair(node, review_uri=handler.url("upper"), review_fallback="DENY")
    started = time.monotonic()
    await a_sender.send_message("hi")
    await d_sender.send_message("hi")
    assert (await a_sender.expect(Type="MESSAGE"))["Content"] == "hi"  # not reviewed: not upper-cased
    assert (await d_sender.expect(Type="ERROR"))["ErrorCode"] == 406
    assert time.monotonic() - started < 1.0  # at most the router's timeout (300 ms), not a hang
    assert handler.requests == []
    # Rooms without a handler are not slowed down at all.
    _, p_sender, _ = await _pair(node)
    t0 = time.monotonic()
    await p_sender.send_message("plain")
    assert (await p_sender.expect(Type="MESSAGE"))["Content"] == "plain"
    assert time.monotonic() - t0 < 0.28  # a review round would wait for the 300 ms router timeout
    for client in (a_sender, d_sender, p_sender):
        await client.close()
