"""Lone surrogates over the WebSocket.

JSON lets a client write ``"\\ud800"``; decoded, no UTF-8 encoder accepts it. Such frames get
ERROR 400 at the parse step (``RequestId`` echoed only when it is encodable itself) and the
connection stays open. Before: ERROR 500 with a traceback per frame, or close 1011 when the
``RequestId`` held the surrogate (echoing it made the error path itself raise).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.protocol.frames import Action, FrameError, parse_client_frame
from shared.protocol.text import UNPAIRED_SURROGATE
from tests.nodes import make_room, mint_token, ws_url

LONE = "\ud800"


def _refused(frame: dict[str, Any]) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(json.dumps(frame))  # ensure_ascii: the surrogate travels as an escape
    return caught.value


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"Action": "SEND_MESSAGE", "Content": "a" + LONE}, "Content"),
        ({"Action": "SEND_MESSAGE", "Content": "hi", "Attributes": {"k": "\udc00"}}, "Attributes"),
        ({"Action": "SEND_MESSAGE", "Content": "hi", "Attributes": {LONE: "v"}}, "Attributes"),
        ({"Action": "DISCONNECT_USER", "UserId": LONE}, "UserId"),
        ({"Action": "DELETE_MESSAGE", "Id": "abcdefghijkl", "Reason": LONE}, "Reason"),
        ({"Action": "SEND_EVENT", "EventName": "app:x", "Recipient": LONE}, "Recipient"),
        ({"Action": "GET_PRESENCE", "After": LONE}, "After"),
        ({"Action": LONE}, "Action"),
        ({"Action": "PING", LONE: 1}, "Frame text"),
        ({"Action": "PING", "Extra": [{"deep": LONE}]}, "Frame text"),
    ],
)
def test_a_lone_surrogate_in_any_field_is_a_bad_request_that_names_it(frame: dict[str, Any], field: str) -> None:
    frame["RequestId"] = "r1"
    error = _refused(frame)
    assert (error.code, error.request_id, error.message) == (400, "r1", f"{field} {UNPAIRED_SURROGATE}")


def test_an_unencodable_request_id_is_refused_and_not_echoed() -> None:
    for request_id in (LONE, "ok" + "\udfff"):
        error = _refused({"Action": "SEND_MESSAGE", "RequestId": request_id, "Content": "hi"})
        assert (error.code, error.request_id, error.message) == (400, None, f"RequestId {UNPAIRED_SURROGATE}")


def test_paired_surrogate_escapes_are_ordinary_text() -> None:
    request = parse_client_frame(
        '{"Action":"SEND_MESSAGE","RequestId":"\\ud83d\\ude00","Content":"\\ud83d\\ude00 \\u00e9"}'
    )
    assert (request.action, request.request_id, request.content) == (Action.SEND_MESSAGE, "😀", "😀 é")


# --- over a real socket ------------------------------------------------------------------------


@pytest.fixture
async def alice(node: Node) -> AsyncIterator[ChatClient]:
    room = await make_room(node)
    client = await ChatClient.open(ws_url(node), mint_token(node, room, "alice", caps=("SEND_MESSAGE",)))
    yield client
    await client.close()


async def _still_open(client: ChatClient) -> None:
    rid = await client.send_message("still here")
    assert (await client.expect(Type="MESSAGE"))["RequestId"] == rid


@pytest.mark.parametrize(
    "raw",
    [
        '{"Action":"SEND_MESSAGE","RequestId":"r1","Content":"\\ud800"}',
        '{"Action":"SEND_MESSAGE","RequestId":"r1","Content":"hi","Attributes":{"k":"\\udc00"}}',
        '{"Action":"PING","RequestId":"r1","Reason":"\\udbff"}',
    ],
)
async def test_a_lone_surrogate_gets_error_400_and_the_connection_stays_open(alice: ChatClient, raw: str) -> None:
    await alice.ws.send(raw)
    error = await alice.expect(Type="ERROR")
    assert (error["ErrorCode"], error["RequestId"]) == (400, "r1")
    await _still_open(alice)


@pytest.mark.parametrize("action", ["FLY", "SEND_MESSAGE", "PING"])
async def test_a_lone_surrogate_request_id_gets_error_400_not_close_1011(alice: ChatClient, action: str) -> None:
    # Before: echoing the RequestId made the error path itself raise, and websockets closed with 1011.
    await alice.ws.send(f'{{"Action":"{action}","RequestId":"\\ud800","Content":"hi"}}')
    error = await alice.expect(Type="ERROR")
    assert error["ErrorCode"] == 400 and "RequestId" not in error
    await _still_open(alice)
