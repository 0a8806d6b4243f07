"""Room history and catch-up (parley extension), over real WebSockets on both backends, and
through the control plane with boto3 and parley's extension model."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest

from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from tests.nodes import make_room as _room
from tests.nodes import mint_token as _token
from tests.nodes import ws_url as _url
from tests.test_bans import parley_client

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]


async def _history(client: ChatClient, **fields: Any) -> dict[str, Any]:
    rid = await client.send("GET_HISTORY", **fields)
    return await client.expect(Type="HISTORY", RequestId=rid)


async def test_history_returns_the_delivered_frames_oldest_first(node: Node) -> None:
    room = await _room(node, maximum_message_rate_per_second=100)
    alice = await ChatClient.open(_url(node), _token(node, room, "alice", caps=("SEND_MESSAGE", "DELETE_MESSAGE")))
    live = []
    for n in range(5):
        await alice.send_message(f"m{n}")
        live.append(await alice.expect(Type="MESSAGE"))
    page = await _history(alice)
    assert page["Gap"] is False and page["Messages"] == live  # byte-for-byte the frames clients got

    await alice.send("DELETE_MESSAGE", Id=live[1]["Id"])
    await alice.expect(Type="EVENT")
    page = await _history(alice, Limit=3)
    assert [m["Content"] for m in page["Messages"]] == ["m2", "m3", "m4"]  # the newest 3, m1 gone

    page = await _history(alice, After=live[2]["Id"])
    assert [m["Content"] for m in page["Messages"]] == ["m3", "m4"]
    page = await _history(alice, After="abcdefghijkl")  # never in history: the client has a gap
    assert page["Gap"] is True and [m["Content"] for m in page["Messages"]] == ["m0", "m2", "m3", "m4"]

    await asyncio.sleep(1)  # stay under the connection's 10 requests/s
    await alice.send("GET_HISTORY", Limit=0)
    assert (await alice.expect(Type="ERROR"))["ErrorCode"] == 400
    await alice.close()


async def test_catch_up_after_reconnect_has_no_gap_and_no_repeat(node: Node) -> None:
    """A sender streams; a reader drops, reconnects with a fresh token mid-stream and asks for
    everything after the last Id it saw. History plus live frames = exactly the rest, in order."""
    room = await _room(node, maximum_message_rate_per_second=100)
    assert node.gateway is not None
    node.gateway.settings = node.settings.with_(connection_rate_per_second=1000)  # the sender streams
    sender = await ChatClient.open(_url(node), _token(node, room, "sender"))
    reader = await ChatClient.open(_url(node), _token(node, room, "reader", caps=()))
    total = 120
    sent: list[str] = []

    async def produce() -> None:
        for n in range(total):
            sent.append(f"{n}")
            await sender.send_message(sent[-1])
            await asyncio.sleep(0.012)

    producer = asyncio.create_task(produce())
    seen: list[str] = []
    while len(seen) < 30:
        frame = await reader.expect(Type="MESSAGE")
        seen.append(frame["Content"])
        last_id = frame["Id"]
    await reader.close()
    await asyncio.sleep(0.2)  # messages flow while the reader is away
    reader = await ChatClient.open(_url(node), _token(node, room, "reader", caps=()))
    page = await _history(reader, After=last_id, Limit=100)
    assert page["Gap"] is False
    after = [m["Content"] for m in page["Messages"]]
    await producer
    deadline = asyncio.get_running_loop().time() + 10
    while (len(seen) + len(after)) < total and asyncio.get_running_loop().time() < deadline:
        frame = await reader.recv(timeout=5)
        if frame["Type"] == "MESSAGE":
            after.append(frame["Content"])
    assert seen + after == sent
    sender.ws.transport.abort()  # it never read its echoes; a close handshake would wait behind them
    await reader.close()


def test_control_plane_lists_history_and_configures_it(api: ApiServer, ivs: Any) -> None:
    parley = parley_client(api)
    room = ivs.create_room(name="hist")
    settings = parley.get_room_extensions(identifier=room["arn"])
    assert (settings["historyMaxMessages"], settings["historyMaxAgeSeconds"]) == (50, 86400)

    frames = [
        json.dumps(
            {
                "Type": "MESSAGE",
                "Id": f"msg{n:09d}",
                "Content": f"c{n}",
                "Attributes": {},
                "SendTime": "2024-05-01T12:00:00.000Z",
                "Sender": {"UserId": "u", "Attributes": {"a": "b"}},
            }
        ).encode()
        for n in range(5)
    ]
    api.run(api.store.history.append(room["id"], [(f"msg{n:09d}", f) for n, f in enumerate(frames)], 50, 86_400_000))
    first = parley.list_room_messages(roomIdentifier=room["arn"], maxResults=2)
    assert [m["content"] for m in first["messages"]] == ["c4", "c3"]
    assert first["messages"][0]["sender"] == {"userId": "u", "attributes": {"a": "b"}}
    second = parley.list_room_messages(roomIdentifier=room["arn"], maxResults=2, nextToken=first["nextToken"])
    third = parley.list_room_messages(roomIdentifier=room["arn"], maxResults=2, nextToken=second["nextToken"])
    assert [m["content"] for m in second["messages"] + third["messages"]] == ["c2", "c1", "c0"]
    assert "nextToken" not in third

    empty = ivs.create_room(name="quiet")
    last = parley.get_last_messages(roomIdentifiers=[room["arn"], empty["arn"]])["lastMessages"]
    assert last[0]["message"]["id"] == "msg000000004" and "message" not in last[1]

    changed = parley.update_room_extensions(identifier=room["arn"], historyMaxMessages=0)
    assert changed["historyMaxMessages"] == 0 and changed["historyMaxAgeSeconds"] == 86400
    assert parley.list_room_messages(roomIdentifier=room["arn"])["messages"] == []
    assert ivs.get_room(identifier=room["arn"])["name"] == "hist"  # IVS shape unchanged
    with pytest.raises(parley.exceptions.ValidationException):
        parley.update_room_extensions(identifier=room["arn"], historyMaxMessages=5000)
