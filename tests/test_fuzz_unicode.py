"""Arbitrary Unicode, lone surrogates included, in every field of every client frame:
never an ERROR 500, never a close with 1011.

Hypothesis leaves surrogates (category ``Cs``) out of text by default; here they are drawn on
purpose, and frames are built with ``json.dumps`` (``ensure_ascii``), so a surrogate travels as a
``\\u`` escape exactly as a hostile client would send it.

Two depths: the pure one (``ChatSession.request`` → ``parse_client_frame``) must either raise a
FrameError that is not a 500 and whose ERROR frame encodes, or return a request whose every string
encodes and whose action envelope goes through msgpack; the socket one sends the same frames to a
running node (memory backend) and checks the connection stays open and no ERROR 500 arrives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from gateway.session import ChatSession
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from parley.testing.cluster import suite_settings
from shared.config import Settings
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.envelope import ActionEnvelope
from shared.protocol.frames import Action, ClientRequest, ErrorCode, FrameError
from shared.protocol.text import is_encodable
from shared.protocol.tokens import Capability, ChatToken
from tests.nodes import make_room, mint_token, started_node, ws_url

# Any code point, surrogates included: st.characters() alone never draws one, and st.text() over
# this union drops them again, hence lists of characters joined.
CHARS = st.characters() | st.characters(categories=["Cs"])
text = st.lists(CHARS, max_size=24).map("".join)
long_text = st.lists(CHARS, max_size=520).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
ID12 = "abcdefghijkl"
id_like = st.sampled_from([ID12, ID12 + "\n", "x"]) | text.map(lambda t: ID12[: max(0, 12 - len(t))] + t)
event_names = st.sampled_from(sorted(frames.CLIENT_EVENT_NAMES)) | text.map(lambda t: "app:" + t) | text
attributes = st.dictionaries(text, long_text | text, max_size=4) | st.fixed_dictionaries({"MessageId": id_like})

ACTIONS = [action.value for action in Action]
FIELDS = {
    "RequestId": text | json_values,
    "Content": long_text | json_values,
    "Attributes": attributes | json_values,
    "Id": id_like | json_values,
    "UserId": text | json_values,
    "Reason": long_text | json_values,
    "Recipient": text | json_values,
    "EventName": event_names | json_values,
    "After": id_like | text | json_values,
    "Limit": st.integers(-2, 600) | json_values,
    "ConnectionId": id_like | json_values,
    "Extra": json_values,  # fields no action reads still travel through the parser
}
FRAMES = st.fixed_dictionaries({"Action": st.sampled_from(ACTIONS) | text | json_values}, optional=FIELDS)
ALL_CAPABILITIES = frozenset(Capability)


def _session() -> ChatSession:
    token = ChatToken("j", "room00000001", "fuzz-user", ALL_CAPABILITIES, {"displayName": "F"}, 0, 10**13)
    unlimited = SlidingWindow(10**9)
    return ChatSession(token, "conn00000001", "gw", "127.0.0.1", 8192, unlimited, SlidingWindow(10**9))


def _strings(request: ClientRequest) -> list[str]:
    fields = [
        request.content,
        request.message_id,
        request.disconnect_user_id,
        request.after,
        request.recipient,
        request.event_name,
    ]
    fields += [request.connection_id, request.request_id or "", request.reason or ""]
    for key, value in (request.attributes or {}).items():
        fields += [key, value]
    return fields


def _check_pure(raw: str) -> None:
    try:
        result = _session().request(raw, 0)
    except FrameError as error:
        assert error.code != ErrorCode.INTERNAL
        assert error.request_id is None or (isinstance(error.request_id, str) and is_encodable(error.request_id))
        assert is_encodable(error.message)
        frames.error_frame(frame_id=ID12, request_id=error.request_id, code=error.code, message=error.message)
        return
    if isinstance(result, ClientRequest):  # answered by the gateway itself
        assert all(is_encodable(value) for value in _strings(result))
        frames.pong_frame(frame_id=ID12, request_id=result.request_id, send_ms=0)
    else:
        assert ActionEnvelope.decode(result.encode()) == result  # the msgpack envelope to the router


@settings(max_examples=600, deadline=None)
@given(FRAMES)
def test_any_unicode_in_any_field_is_never_an_internal_error(frame: dict[str, Any]) -> None:
    _check_pure(json.dumps(frame))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ACTIONS), st.sampled_from(sorted(FIELDS)), json_values | long_text)
def test_one_hostile_field_on_an_otherwise_valid_frame(action: str, field: str, value: Any) -> None:
    frame: dict[str, Any] = {
        "Action": action,
        "RequestId": "r1",
        "Content": "hi",
        "Id": ID12,
        "UserId": "bob",
        "EventName": "app:x",
        "ConnectionId": ID12,
    }
    frame[field] = value
    _check_pure(json.dumps(frame))


# --- over a real socket -------------------------------------------------------------------------


@pytest.fixture
def settings_fuzz(namespace: str) -> Settings:
    # Quotas out of the way: the property is about content, and 429s would hide the rest.
    return suite_settings(namespace).with_(
        connection_rate_per_second=10**6,
        event_rate_per_second=10**6,
        account_send_message_rate=10**6,
        account_delete_message_rate=10**6,
        account_disconnect_user_rate=10**6,
    )


@pytest.fixture(params=["memory"])  # started_node's backend
async def fuzz_client(request: pytest.FixtureRequest, settings_fuzz: Settings) -> AsyncIterator[ChatClient]:
    async with started_node(request, settings_fuzz) as node:
        room = await make_room(node, maximum_message_rate_per_second=10**6)
        client = await ChatClient.open(ws_url(node), _token(node, room))
        yield client
        await client.close()


def _token(node: Node, room: Any) -> str:
    return mint_token(node, room, "fuzz-user-q7Zk", caps=tuple(sorted(ALL_CAPABILITIES)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=FRAMES)
async def test_any_unicode_over_the_socket_never_gets_500_or_1011(
    fuzz_client: ChatClient, frame: dict[str, Any]
) -> None:
    client = fuzz_client
    await client.ws.send(json.dumps(frame))  # ensure_ascii: surrogates as \u escapes
    # A SEND_MESSAGE through the same room's shard: everything the frame caused arrives before its echo.
    sentinel = await client.send_message("sentinel")
    got = []
    while True:
        received = await client.recv()  # raises ConnectionClosed (with its code) if the socket closed
        if received.get("RequestId") == sentinel and received["Type"] == "MESSAGE":
            break
        got.append(received)
    assert not [f for f in got if f["Type"] == "ERROR" and f["ErrorCode"] == ErrorCode.INTERNAL], (frame, got)


def test_the_text_strategy_draws_lone_surrogates() -> None:
    # Guards the properties above: without surrogates they would pass without testing the point.
    found = find(text, lambda value: not is_encodable(value), settings=settings(max_examples=500, database=None))
    assert not is_encodable(found)
