"""Review RPC conformance: the same tests against the memory and the RabbitMQ engines.

A request is answered by exactly one of the competing servers; anything else (no server, a
server that stopped, fails or does not answer, a deadline passed) is None for the caller, who
then falls back. No request ever raises.
"""

from __future__ import annotations

import asyncio

from shared.engine.review_rpc import ReviewHandler
from tests.engine_helpers import TIMEOUT, MakeBus


async def test_a_request_gets_its_servers_reply(make_bus: MakeBus) -> None:
    caller, reviewer = await make_bus(), await make_bus()

    async def upper(data: bytes) -> bytes | None:
        return data.upper()

    server = await reviewer.reviews.serve(upper, 4)
    replies = await asyncio.gather(*(caller.reviews.request(b"batch-%d" % n, TIMEOUT) for n in range(20)))
    assert replies == [b"BATCH-%d" % n for n in range(20)]  # each reply went to its own caller
    await server.stop()


async def test_nobody_serving_is_none(make_bus: MakeBus) -> None:
    bus = await make_bus()
    assert await bus.reviews.request(b"unanswered", 0.3) is None


async def test_competing_servers_answer_each_request_once(make_bus: MakeBus) -> None:
    caller, one, two = await make_bus(), await make_bus(), await make_bus()
    answered_by: dict[bytes, str] = {}

    def answering(name: str) -> ReviewHandler:
        async def handler(data: bytes) -> bytes | None:
            assert data not in answered_by  # no request reaches two servers
            answered_by[data] = name
            await asyncio.sleep(0.01)
            return name.encode()

        return handler

    servers = [await one.reviews.serve(answering("one"), 2), await two.reviews.serve(answering("two"), 2)]
    requests = [b"%d" % n for n in range(30)]
    replies = await asyncio.gather(*(caller.reviews.request(data, TIMEOUT) for data in requests))
    assert replies == [answered_by[data].encode() for data in requests]  # the answering server's reply
    assert set(answered_by.values()) == {"one", "two"}  # both took some
    for server in servers:
        await server.stop()


async def test_a_server_takes_at_most_its_concurrency(make_bus: MakeBus) -> None:
    caller, reviewer = await make_bus(), await make_bus()
    active, peak = 0, 0

    async def slow(data: bytes) -> bytes | None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return data

    server = await reviewer.reviews.serve(slow, 2)
    replies = await asyncio.gather(*(caller.reviews.request(b"%d" % n, TIMEOUT) for n in range(8)))
    assert replies == [b"%d" % n for n in range(8)]
    assert peak == 2
    await server.stop()


async def test_no_reply_a_failure_or_a_late_reply_is_none(make_bus: MakeBus) -> None:
    caller, reviewer = await make_bus(), await make_bus()

    async def judge(data: bytes) -> bytes | None:
        if data == b"silent":
            return None
        if data == b"fail":
            raise RuntimeError("handler bug")
        if data == b"late":
            await asyncio.sleep(0.6)
        return b"ok"

    server = await reviewer.reviews.serve(judge, 4)
    assert await caller.reviews.request(b"silent", 0.3) is None
    assert await caller.reviews.request(b"fail", 0.3) is None
    assert await caller.reviews.request(b"late", 0.3) is None
    assert await caller.reviews.request(b"fine", TIMEOUT) == b"ok"  # the server is still serving
    await server.stop()


async def test_a_stopped_server_takes_no_more_requests(make_bus: MakeBus) -> None:
    caller, reviewer = await make_bus(), await make_bus()
    seen: list[bytes] = []

    async def echo(data: bytes) -> bytes | None:
        seen.append(data)
        return data

    server = await reviewer.reviews.serve(echo, 4)
    assert await caller.reviews.request(b"before", TIMEOUT) == b"before"
    await server.stop()
    await server.stop()  # idempotent
    assert await caller.reviews.request(b"after", 0.3) is None
    assert seen == [b"before"]
