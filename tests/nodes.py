"""Data-plane test nodes: an embedded Node on the memory or the real backends, and helpers to
create rooms and mint tokens directly (no control plane needed)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from parley.embedded import Node
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.bus import Bus
from shared.engine.memory import MemoryBus, MemoryStore
from shared.engine.records import RecordKind
from shared.engine.store import Store
from shared.protocol import tokens
from shared.protocol.ids import new_id, room_arn
from shared.protocol.models import Room

BACKENDS = ["memory", pytest.param("real", marks=pytest.mark.integration)]


@contextlib.asynccontextmanager
async def started_node(
    request: pytest.FixtureRequest,
    settings: Settings,
    *,
    api: bool = False,
    logger: bool = False,
    fronts: tuple[str, ...] = (),
) -> AsyncIterator[Node]:
    """A started Node on the backend ``request.param`` names (see ``BACKENDS``); stopped after,
    and on the real backends its queues and keys deleted. ``fronts`` start on free ports."""
    store: Store
    bus: Bus
    if request.param == "memory":
        store, bus = MemoryStore(), MemoryBus(settings.shards)
    else:
        from parley.runtime import real_backends

        settings = settings.with_(
            redis_url=request.getfixturevalue("redis_url"), amqp_url=request.getfixturevalue("amqp_url")
        )
        store, bus = real_backends(settings)
    node = Node(settings, store, bus, api=api, router_all_shards=True, logger=logger, fronts=fronts)
    await node.start(api_port=0 if api else None, gateway_port=0, front_ports=dict.fromkeys(fronts, 0))
    yield node
    await node.stop(close_backends=False)
    if request.param == "real":
        await bus.destroy()
        await store.destroy()  # type: ignore[attr-defined]
    await bus.close()
    await store.close()


@pytest.fixture(params=BACKENDS)
async def node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    async with started_node(request, settings) as started:
        yield started


async def make_room(node: Node, **kw: object) -> Room:
    room_id = new_id()
    room = Room(id=room_id, arn=room_arn("us-east-1", "123456789012", room_id), **kw)  # type: ignore[arg-type]
    await node.store.records.create(RecordKind.ROOM, room_id, room.to_record(), now_ms(), 100)
    return room


def mint_token(node: Node, room: Room, user: str, caps: tuple[str, ...] = ("SEND_MESSAGE",), minutes: int = 60) -> str:
    token, _ = tokens.mint(
        node.settings.token_secret_bytes,
        room_id=room.id,
        user_id=user,
        capabilities=list(caps),
        attributes={"displayName": user.title()},
        now_ms=now_ms(),
        session_minutes=minutes,
    )
    return token


def ws_url(node: Node) -> str:
    assert node.gateway is not None
    return f"ws://127.0.0.1:{node.gateway.port}/"
