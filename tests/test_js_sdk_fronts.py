"""The official JS client SDK (``tests/test_js_sdk.py``) and a seed protocol front's client in the same parley room.

Where the models meet: a relay (seed 001) room and a plic (seed 004) room are parley rooms, so a client of the
unmodified ``amazon-ivs-chat-messaging`` SDK with a chat token for that room talks with the front's clients. The
SDK runs the ``peer`` scenario of ``tests/js/sdk_client.mjs``: it connects, sends, then waits for the front
client's messages, which the front client sends once it has seen the SDK's arrive (both ends observed, no sleeps).
The mapping checked is the README's "Seed protocols" section.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from parley.embedded import Node
from shared.config import Settings
from shared.engine.records import RecordKind
from shared.protocol.ids import room_arn
from shared.protocol.models import Room
from tests.nodes import BACKENDS, make_room, mint_token, started_node, ws_url
from tests.plic_client import SECRET, Plic, recv, send
from tests.relay_client import RelayClient
from tests.sdk_runner import MESSAGE_ID, SDK_MARKS, SdkRun, assert_sent_recently, started

pytestmark = SDK_MARKS

UNKNOWN_PLIC_ROOM = (1 << 53) - 1  # the largest id a plic frame may name; no test makes that many rooms


@pytest.fixture(params=BACKENDS)
async def node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    async with started_node(request, settings.with_(plic_jwt_secret=SECRET), fronts=("relay", "plic")) as started:
        yield started


def _from(run: SdkRun, user_id: str) -> list[dict[str, Any]]:
    """The ChatMessages the SDK client received from ``user_id``."""
    return [line["value"] for line in run.of("ivs", "message") if line["value"]["sender"]["userId"] == user_id]


async def test_a_relay_client_and_an_sdk_client_share_the_room(node: Node) -> None:
    room = await make_room(node)
    relay = await RelayClient.open(node.fronts["relay"].port, room.id)  # the greeting: it is in the room already
    sdk_sends = [
        ["hello relay", {"k": "v"}],
        ['{"n":[1,null],"s":"ünï"}', {"relay:data": "json"}],
        ["[NaN]", {"relay:data": "json"}],  # marked, but no JSON: relay clients get the text
    ]
    async with started(
        "peer", ws_url(node), {"ivs": [mint_token(node, room, "ivs")]}, send=sdk_sends, peer=relay.id, expect=2
    ) as sdk:
        # SDK → relay, in relay's shape: plain Content is the data (attributes are not shown), Content marked
        # relay:data=json is the JSON value it encodes
        assert await relay.expect(from_="ivs") == {"from": "ivs", "data": "hello relay"}
        assert await relay.expect(from_="ivs") == {"from": "ivs", "data": {"n": [1, None], "s": "ünï"}}
        assert await relay.expect(from_="ivs") == {"from": "ivs", "data": "[NaN]"}
        # relay → SDK: the SDK's messages went through the room, so the SDK client is in it
        await relay.send({"to": "all", "data": "hello sdk"})
        await relay.send({"to": "all", "data": {"event": "join", "n": [1, None]}})
        run = await sdk.finish()
    await relay.close()

    assert [result["ok"] for result in run.results("ivs", "sendMessage")] == [True, True, True], run
    text, data = _from(run, relay.id)
    sender = {"userId": relay.id, "attributes": {}}  # a relay connection is a parley user named by its id
    assert text["content"] == "hello sdk" and text["attributes"] == {} and text["sender"] == sender, run
    assert data["content"] == '{"event":"join","n":[1,null]}', run  # non-string data: JSON text, marked
    assert data["attributes"] == {"relay:data": "json"} and data["sender"] == sender, run
    for message in (text, data):
        assert MESSAGE_ID.match(message["id"]) and "requestId" not in message, run  # relay frames have no request
        assert message["sendTimeType"] == "[object Date]", run
        assert_sent_recently(message["sendTime"], run)


async def test_a_plic_client_and_an_sdk_client_share_the_room(node: Node, settings: Settings) -> None:
    async with aiohttp.ClientSession() as http:
        client = Plic(node, http)
        plic_id = await client.create("alice", ["ivs"])
        # the plic room's alias names its parley room; the SDK's token is minted for that room as for any other
        alias = await node.store.records.get(RecordKind.PLIC_ROOM, str(plic_id))
        assert alias is not None
        record = await node.store.records.get(RecordKind.ROOM, alias["room_id"])
        assert record is not None
        room = Room.from_record(record)
        assert room.arn == room_arn(settings.region, settings.account_id, alias["room_id"]) and room.members_only
        assert room.name == f"plic:{plic_id}"

        alice = await client.ws("alice")
        # The front reads a connection's frames only once it receives its rooms: this refusal says alice does.
        await alice.send_str(send(UNKNOWN_PLIC_ROOM, "anyone?", "probe"))
        assert (await recv(alice))["data"]["confirmed"] is False

        async with started(
            "peer",
            ws_url(node),
            {"ivs": [mint_token(node, room, "ivs")]},
            send=[["hi plic", {"k": "v"}]],
            peer="alice",
            expect=1,
        ) as sdk:
            # SendMessage from the SDK → MessageReceived, with the plic room's int id
            assert await recv(alice) == {
                "type": "MessageReceived",
                "data": {"room_id": plic_id, "sender_id": "ivs", "message": "hi plic"},
            }
            # SendMessage from plic → the sender's confirmation, and a ChatMessage for the SDK client
            await alice.send_str(send(plic_id, "hi sdk", "t-1"))
            confirmation = await recv(alice)
            run = await sdk.finish()
        await alice.close()

    assert confirmation["type"] == "MessageSentConfirmation", confirmation
    assert confirmation["data"]["confirmed"] is True and confirmation["data"]["message_temp_id"] == "t-1"
    [sent] = run.results("ivs", "sendMessage")
    assert sent["ok"] is True, run
    [message] = _from(run, "alice")
    assert message["id"] == confirmation["data"]["message_id"], run  # one message, one id on both sides
    assert message["content"] == "hi sdk" and message["attributes"] == {}, run
    assert message["sender"] == {"userId": "alice", "attributes": {}}, run  # the JWT's sub
    assert message["sendTimeType"] == "[object Date]", run
    assert_sent_recently(message["sendTime"], run)
    # both messages are the room's history, which plic shows in GET /rooms/:id
    async with aiohttp.ClientSession() as http:
        _, body = await Plic(node, http).call("GET", f"/rooms/{plic_id}", "alice")
    assert [(m["sender_id"], m["message"]) for m in body["data"]["messages"]] == [
        ("ivs", "hi plic"),
        ("alice", "hi sdk"),
    ]
