"""Review in distributed mode: ``parley api``, ``gateway``, ``router`` and ``reviewer`` as
separate processes on RabbitMQ/Redis, with a real HTTP handler in the test process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import Cluster, running_cluster, serving
from shared.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PREFIX = "ok "


@pytest.fixture
async def handler_url() -> AsyncIterator[str]:
    """Allows every message with PREFIX added (so reviewed and fallback deliveries differ), after
    30 ms, so a killed reviewer always has reviews in flight."""

    async def review(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(0.03)
        return web.json_response({"ReviewResult": "ALLOW", "Content": PREFIX + body["Content"]})

    app = web.Application()
    app.router.add_post("/review", review)
    async with serving(app) as url:
        yield f"{url}/review"


@pytest.fixture
def cluster(settings: Settings, redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    with running_cluster(
        settings, redis_url, amqp_url, gateways=1, routers=1, PARLEY_CONNECTION_RATE_PER_SECOND="1000"
    ) as cluster:
        cluster.start("reviewer1", "reviewer")
        yield cluster


async def test_killed_reviewer_loses_no_accepted_message(cluster: Cluster, handler_url: str) -> None:
    """Two rooms (fallback ALLOW and DENY) review every message through the reviewer process,
    which is SIGKILLed mid-stream and replaced. Every accepted message ends as exactly one of:
    reviewed and delivered, delivered by fallback ALLOW, or refused with 406 by fallback DENY —
    and each room's deliveries keep send order."""
    ivschat = cluster.ivschat()
    rooms = {
        fallback: ivschat.create_room(
            name=f"review-{fallback.lower()}",
            maximumMessageRatePerSecond=100,
            messageReviewHandler={"uri": handler_url, "fallbackResult": fallback},
        )
        for fallback in ("ALLOW", "DENY")
    }
    senders = {f: await ChatClient.open(cluster.ws_url("gwA"), cluster.token(r["arn"], "s")) for f, r in rooms.items()}
    readers = {
        f: await ChatClient.open(cluster.ws_url("gwA"), cluster.token(r["arn"], "r", [])) for f, r in rooms.items()
    }
    await asyncio.sleep(0.3)

    total = 150
    sent: dict[str, dict[str, str]] = {"ALLOW": {}, "DENY": {}}  # RequestId -> content

    async def produce() -> None:
        for n in range(total):
            for fallback, sender in senders.items():
                content = f"m{n:04d}"
                sent[fallback][await sender.send_message(content)] = content
            await asyncio.sleep(0.02)  # ~50/s per room

    producer = asyncio.create_task(produce())
    await asyncio.sleep(1.0)
    cluster.kill("reviewer1")  # SIGKILL with reviews in flight
    await asyncio.sleep(0.8)
    cluster.start("reviewer2", "reviewer")
    await producer

    outcomes: dict[str, dict[str, list[str]]] = {}
    for fallback, sender in senders.items():
        got: dict[str, list[str]] = {}
        deadline = time.monotonic() + 10
        while sum(map(len, got.values())) < total and time.monotonic() < deadline:
            frame = await sender.recv(timeout=max(deadline - time.monotonic(), 0.1))
            if frame["Type"] == "MESSAGE":
                got.setdefault(frame["RequestId"], []).append(
                    "reviewed" if frame["Content"].startswith(PREFIX) else "fallback"
                )
                assert frame["Content"] in (
                    sent[fallback][frame["RequestId"]],
                    PREFIX + sent[fallback][frame["RequestId"]],
                )
            else:
                assert frame["Type"] == "ERROR" and frame["ErrorCode"] == 406, frame
                got.setdefault(frame["RequestId"], []).append("denied")
        outcomes[fallback] = got
        assert set(got) == set(sent[fallback]), f"{fallback}: {len(set(sent[fallback]) - set(got))} vanished"
        assert all(len(kinds) == 1 for kinds in got.values()), "an outcome was repeated"

    allow = [kinds[0] for kinds in outcomes["ALLOW"].values()]
    deny = [kinds[0] for kinds in outcomes["DENY"].values()]
    assert "denied" not in allow and "fallback" not in deny
    # Reviews happened before the kill and after the replacement; the gap fell back.
    assert allow.count("reviewed") > 20 and allow.count("fallback") > 0, allow
    assert deny.count("reviewed") > 20 and deny.count("denied") > 0, deny
    assert allow[-1] == deny[-1] == "reviewed"
    for fallback, reader in readers.items():
        delivered = [f["Content"].removeprefix(PREFIX) for f in await reader.drain() if f["Type"] == "MESSAGE"]
        expected = [c for rid, c in sent[fallback].items() if outcomes[fallback][rid][0] != "denied"]
        assert delivered == expected
    for client in [*senders.values(), *readers.values()]:
        await client.close()
