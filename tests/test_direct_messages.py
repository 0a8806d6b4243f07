"""Direct messages (parley extension): SEND_MESSAGE with ``Recipient`` reaches every connection
of the sender and the recipient and nobody else; reviewed and logged like any message, never
kept in history. Data-plane tests run on the memory and the real backends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from logger_sink.records import records_from_delivery
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.protocol import frames
from shared.protocol.envelope import ActionEnvelope, DeliveryItem, Kind, RoomDelivery
from shared.protocol.frames import Action, ErrorCode, FrameError
from tests.nodes import make_room, mint_token, ws_url


# --- parsing -------------------------------------------------------------------------------------
def test_recipient_is_parsed_and_validated() -> None:
    request = frames.parse_client_frame('{"Action":"SEND_MESSAGE","Content":"hi","Recipient":"bob"}')
    assert request.action is Action.SEND_MESSAGE and request.recipient == "bob"
    assert frames.parse_client_frame('{"Action":"SEND_MESSAGE","Content":"hi"}').recipient == ""
    for bad, code in (('""', 400), ("5", 400), (json.dumps("u" * 129), 413)):
        with pytest.raises(FrameError) as caught:
            frames.parse_client_frame(f'{{"Action":"SEND_MESSAGE","RequestId":"r","Content":"hi","Recipient":{bad}}}')
        assert caught.value.code == code and caught.value.request_id == "r"


def test_message_frame_names_the_recipient_only_when_direct() -> None:
    common: dict[str, Any] = dict(
        frame_id="abcdefghijkl", request_id=None, content="x", attributes=None, send_ms=0,
        sender_user_id="a", sender_attributes=None,
    )  # fmt: skip
    assert "Recipient" not in json.loads(frames.message_frame(**common))
    assert json.loads(frames.message_frame(**common, recipient="b"))["Recipient"] == "b"


def test_delivery_item_targets_survive_the_wire() -> None:
    item = DeliveryItem(Kind.SEND_MESSAGE, b"{}", only_users=["a", "b"], only_moderators=True, approve_connection="c")
    (decoded,) = RoomDelivery.decode(RoomDelivery("r", [item]).encode()).items
    assert decoded == item
    envelope = ActionEnvelope(Kind.SEND_MESSAGE, "abcdefghijkl", "r", 1, recipient="bob")
    assert ActionEnvelope.decode(envelope.encode()).recipient == "bob"


# --- data plane, both backends ---------------------------------------------------------------------
async def test_direct_message_reaches_only_the_two_parties(node: Node) -> None:
    room = await make_room(node, maximum_message_rate_per_second=100)
    url = ws_url(node)
    alice1 = await ChatClient.open(url, mint_token(node, room, "alice"))
    alice2 = await ChatClient.open(url, mint_token(node, room, "alice"))
    bob = await ChatClient.open(url, mint_token(node, room, "bob"))
    carol = await ChatClient.open(url, mint_token(node, room, "carol"))

    rid = await alice1.send_message("psst", Recipient="bob", Attributes={"k": "v"})
    echoed = await alice1.expect(Type="MESSAGE", RequestId=rid)
    assert echoed["Recipient"] == "bob" and echoed["Sender"]["UserId"] == "alice" and echoed["Content"] == "psst"
    assert await alice2.expect(Type="MESSAGE") == echoed  # every connection of the sender
    assert await bob.expect(Type="MESSAGE") == echoed
    # A room message afterwards: carol's first frame must be it, not the direct message.
    await bob.send_message("hello all")
    assert (await carol.expect(Type="MESSAGE"))["Content"] == "hello all"
    assert not [f for f in carol.frames if f.get("Content") == "psst"]

    # Not in history: the room's history holds only the room message.
    rid = await carol.send("GET_HISTORY")
    page = await carol.expect(Type="HISTORY", RequestId=rid)
    assert [m["Content"] for m in page["Messages"]] == ["hello all"]
    for client in (alice1, alice2, bob, carol):
        await client.close()


async def test_direct_message_is_reviewed(node: Node) -> None:
    room = await make_room(node, review_uri="parley:blocklist?words=darn&action=mask&mask=*")
    alice = await ChatClient.open(ws_url(node), mint_token(node, room, "alice"))
    bob = await ChatClient.open(ws_url(node), mint_token(node, room, "bob"))
    await alice.send_message("oh darn", Recipient="bob")
    got = await bob.expect(Type="MESSAGE")
    assert got["Content"] == "oh ****" and got["Recipient"] == "bob"

    denied = await make_room(node, review_uri="parley:deny?reason=nope")
    alice2 = await ChatClient.open(ws_url(node), mint_token(node, denied, "alice"))
    bob2 = await ChatClient.open(ws_url(node), mint_token(node, denied, "bob"))
    rid = await alice2.send_message("hi", Recipient="bob")
    error = await alice2.expect(Type="ERROR", RequestId=rid)
    assert error["ErrorCode"] == ErrorCode.REJECTED and "nope" in error["ErrorMessage"]
    assert await bob2.drain(0.3) == []
    for client in (alice, bob, alice2, bob2):
        await client.close()


async def test_direct_messages_are_logged_as_delivered_and_client_events_are_not(node: Node) -> None:
    room = await make_room(node, logging_configuration_identifiers=["cfg"])
    logged: list[dict[str, Any]] = []

    async def collect(room_id: str, data: bytes, ack: Any) -> None:
        _, records = records_from_delivery(data)
        logged.extend(json.loads(record.line) for record in records)
        await ack()

    consumer = await node.bus.logs.consume(collect)
    try:
        alice = await ChatClient.open(ws_url(node), mint_token(node, room, "alice", ("SEND_MESSAGE", "SEND_EVENT")))
        bob = await ChatClient.open(ws_url(node), mint_token(node, room, "bob"))
        await alice.send("SEND_EVENT", EventName="parley:TYPING_START")
        await bob.expect(Type="EVENT")
        await alice.send_message("secret", Recipient="bob")
        direct = await bob.expect(Type="MESSAGE")
        for _ in range(100):
            if logged:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert [(r["type"], r["payload"]) for r in logged] == [("MESSAGE", direct)]
        await alice.close()
        await bob.close()
    finally:
        await consumer.stop()
