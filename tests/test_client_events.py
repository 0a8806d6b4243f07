"""Client events (parley extension): SEND_EVENT with the SEND_EVENT capability — typing,
delivered/read receipts and ``app:`` names — fanned out as EVENT frames through the room's shard,
optionally direct, with their own rate limit; never in history, never reviewed."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import ValidationException
from api.validation import validate
from gateway.session import ChatSession
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.frames import Action, ErrorCode, FrameError
from shared.protocol.tokens import ChatToken
from tests.nodes import make_room, mint_token, ws_url

EVENTS = ("SEND_MESSAGE", "SEND_EVENT")


# --- parsing and validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["parley:TYPING_START", "parley:TYPING_STOP", "app:poll_vote", "app:a", "app:" + "x" * 96]
)
def test_event_names_clients_may_send(name: str) -> None:
    request = frames.parse_client_frame(f'{{"Action":"SEND_EVENT","EventName":"{name}","Attributes":{{"a":"b"}}}}')
    assert request.action is Action.SEND_EVENT and request.event_name == name and request.attributes == {"a": "b"}


@pytest.mark.parametrize(
    "body",
    [
        '{"Action":"SEND_EVENT","RequestId":"r"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"aws:DELETE_MESSAGE"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"parley:CONNECTION_APPROVED"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"typing"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"app:"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"app:has space"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"app:' + "x" * 97 + '"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"parley:READ"}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"parley:DELIVERED","Attributes":{"MessageId":"short"}}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"app:x","Attributes":{"a":1}}',
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"app:x","Recipient":""}',
    ],
)
def test_bad_client_events_are_400(body: str) -> None:
    with pytest.raises(FrameError) as caught:
        frames.parse_client_frame(body)
    assert caught.value.code == ErrorCode.BAD_REQUEST and caught.value.request_id == "r"


def test_receipts_carry_a_message_id_and_may_be_direct() -> None:
    request = frames.parse_client_frame(
        '{"Action":"SEND_EVENT","EventName":"parley:READ","Attributes":{"MessageId":"abcdefghijkl"},"Recipient":"bob"}'
    )
    assert request.attributes == {"MessageId": "abcdefghijkl"} and request.recipient == "bob"


def _session(*caps: str, event_rate: int = 5) -> ChatSession:
    token = ChatToken("t", "room", "alice", frozenset(caps), {"n": "A"})
    return ChatSession(token, "conn", "gw", "1.2.3.4", rate=SlidingWindow(10), event_rate=SlidingWindow(event_rate))


def test_session_turns_an_event_into_a_send_event_action() -> None:
    action = _session(*EVENTS).request(
        '{"Action":"SEND_EVENT","RequestId":"r","EventName":"app:x","Attributes":{"a":"b"},"Recipient":"bob"}', 1000
    )
    assert isinstance(action, ActionEnvelope)
    assert (action.kind, action.event_name, action.attributes, action.recipient) == (
        Kind.SEND_EVENT,
        "app:x",
        {"a": "b"},
        "bob",
    )
    assert (action.gateway_id, action.user_id, action.user_attributes) == ("gw", "alice", {"n": "A"})


def test_send_event_needs_its_capability() -> None:
    with pytest.raises(FrameError) as caught:
        _session("SEND_MESSAGE").request('{"Action":"SEND_EVENT","EventName":"app:x"}', 0)
    assert caught.value.code == ErrorCode.FORBIDDEN


def test_events_have_their_own_rate_limit() -> None:
    session = _session(*EVENTS, event_rate=5)
    event = '{"Action":"SEND_EVENT","EventName":"parley:TYPING_START"}'
    for n in range(10):  # the messaging quota is used up...
        session.request(f'{{"Action":"SEND_MESSAGE","Content":"{n}"}}', 1000)
    with pytest.raises(FrameError) as caught:
        session.request('{"Action":"SEND_MESSAGE","Content":"11"}', 1000)
    assert caught.value.code == ErrorCode.TOO_MANY_REQUESTS
    for _ in range(5):  # ...and events still pass, up to their own 5 per second
        session.request(event, 1000)
    with pytest.raises(FrameError) as caught:
        session.request(event, 1000)
    assert caught.value.code == ErrorCode.TOO_MANY_REQUESTS and "events" in caught.value.message
    session.request(event, 2000)  # a second later the window has room again


def test_create_chat_token_accepts_send_event_but_not_unknown_capabilities() -> None:
    arn = "arn:aws:ivschat:us-east-1:123456789012:room/abcdefghijkl"
    validate("CreateChatToken", {"roomIdentifier": arn, "userId": "u", "capabilities": ["SEND_MESSAGE", "SEND_EVENT"]})
    with pytest.raises(ValidationException):
        validate("CreateChatToken", {"roomIdentifier": arn, "userId": "u", "capabilities": ["SEND_EVERYTHING"]})


# --- data plane, both backends ---------------------------------------------------------------------
async def test_client_events_reach_the_room_in_order_with_messages(node: Node) -> None:
    room = await make_room(node, review_uri="parley:deny")  # reviews apply to messages, never to events
    alice = await ChatClient.open(ws_url(node), mint_token(node, room, "alice", EVENTS))
    bob = await ChatClient.open(ws_url(node), mint_token(node, room, "bob", ("SEND_MESSAGE",)))

    rid = await alice.send("SEND_EVENT", EventName="parley:TYPING_START", Attributes={"x": "1"})
    echoed = await alice.expect(Type="EVENT", RequestId=rid)
    assert echoed["EventName"] == "parley:TYPING_START" and echoed["Attributes"] == {"x": "1"}
    assert echoed["Sender"] == {"UserId": "alice", "Attributes": {"displayName": "Alice"}}
    assert "Recipient" not in echoed
    assert await bob.expect(Type="EVENT") == echoed

    rid = await bob.send("SEND_EVENT", EventName="parley:TYPING_STOP")
    assert (await bob.expect(Type="ERROR", RequestId=rid))["ErrorCode"] == ErrorCode.FORBIDDEN

    rid = await alice.send_message("denied by review")
    assert (await alice.expect(Type="ERROR", RequestId=rid))["ErrorCode"] == ErrorCode.REJECTED
    names = []
    for name in ("parley:TYPING_STOP", "app:poll_vote"):
        await alice.send("SEND_EVENT", EventName=name)
        names.append((await bob.expect(Type="EVENT"))["EventName"])
    assert names == ["parley:TYPING_STOP", "app:poll_vote"]

    rid = await bob.send("GET_HISTORY")
    assert (await bob.expect(Type="HISTORY", RequestId=rid))["Messages"] == []  # events are never kept
    await alice.close()
    await bob.close()


async def test_direct_receipts_reach_only_the_two_parties(node: Node) -> None:
    room = await make_room(node)
    alice = await ChatClient.open(ws_url(node), mint_token(node, room, "alice", EVENTS))
    bob = await ChatClient.open(ws_url(node), mint_token(node, room, "bob", EVENTS))
    carol = await ChatClient.open(ws_url(node), mint_token(node, room, "carol", EVENTS))
    await alice.send_message("hello")
    message = await bob.expect(Type="MESSAGE")
    await carol.expect(Type="MESSAGE")

    await bob.send("SEND_EVENT", EventName="parley:READ", Attributes={"MessageId": message["Id"]}, Recipient="alice")
    receipt = await alice.expect(Type="EVENT")
    assert receipt["EventName"] == "parley:READ" and receipt["Recipient"] == "alice"
    assert receipt["Attributes"] == {"MessageId": message["Id"]} and receipt["Sender"]["UserId"] == "bob"
    assert await bob.expect(Type="EVENT") == receipt
    await carol.send("SEND_EVENT", EventName="app:ping")  # carol's next frame is her own event
    first: dict[str, Any] = await carol.expect(Type="EVENT")
    assert first["EventName"] == "app:ping"
    for client in (alice, bob, carol):
        await client.close()
