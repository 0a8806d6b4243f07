"""CreateChatToken, SendEvent, DeleteMessage and DisconnectUser through boto3."""

from __future__ import annotations

import queue
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.clock import now_ms
from shared.protocol import tokens
from shared.protocol.envelope import Kind
from shared.protocol.ids import ID12_RE

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]

MISSING_ROOM = "arn:aws:ivschat:us-east-1:123456789012:room/abcDEF123456"


@pytest.fixture
def room(ivs) -> dict:
    return ivs.create_room(name="chat")


def test_chat_token_verifies_and_carries_claims(api: ApiServer, ivs, room) -> None:
    before = now_ms()
    response = ivs.create_chat_token(
        roomIdentifier=room["arn"],
        userId="user-1 ünïcode",
        capabilities=["SEND_MESSAGE", "DELETE_MESSAGE"],
        sessionDurationInMinutes=5,
        attributes={"displayName": "Ana"},
    )
    claims = tokens.verify(api.settings.token_secret_bytes, response["token"], now_ms=now_ms())
    assert claims.room_id == room["id"]
    assert claims.user_id == "user-1 ünïcode"
    assert claims.capabilities == frozenset({"SEND_MESSAGE", "DELETE_MESSAGE"})
    assert claims.attributes == {"displayName": "Ana"}
    assert before <= claims.session_expires_ms - 5 * 60_000 <= now_ms()
    lifetime = response["sessionExpirationTime"] - response["tokenExpirationTime"]
    assert lifetime == timedelta(minutes=5) - timedelta(milliseconds=tokens.TOKEN_LIFETIME_MS)
    with pytest.raises(tokens.TokenError):
        tokens.verify(b"another-secret", response["token"], now_ms=now_ms())


def test_chat_token_defaults(api: ApiServer, ivs, room) -> None:
    response = ivs.create_chat_token(roomIdentifier=room["arn"], userId="u")
    claims = tokens.verify(api.settings.token_secret_bytes, response["token"], now_ms=now_ms())
    assert claims.capabilities == frozenset()
    assert claims.attributes == {}
    assert claims.session_expires_ms - claims.token_expires_ms == 60 * 60_000 - tokens.TOKEN_LIFETIME_MS


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"capabilities": ["SEND_MESSAGE", "READ"]}, "capabilities[1]"),
        ({"sessionDurationInMinutes": 181}, "sessionDurationInMinutes"),
        ({"userId": "u" * 129}, "userId"),
        ({"attributes": {"k": "v" * 1024}}, "attributes"),
        ({"roomIdentifier": "arn:aws:ivschat:us-east-1:123456789012:channel/abc"}, "roomIdentifier"),
    ],
)
def test_chat_token_validation(ivs, room, kwargs, field: str) -> None:
    params = {"roomIdentifier": room["arn"], "userId": "u", **kwargs}
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_chat_token(**params)
    assert [f["name"] for f in caught.value.response["fieldList"]] == [field]


def test_chat_token_attributes_at_exactly_1kb_accepted(ivs, room) -> None:
    ivs.create_chat_token(roomIdentifier=room["arn"], userId="u", attributes={"k": "é" * 511 + "v"})


def test_chat_token_unknown_room(ivs) -> None:
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.create_chat_token(roomIdentifier=MISSING_ROOM, userId="u")


def test_send_event_publishes_action(api: ApiServer, ivs, room) -> None:
    response = ivs.send_event(roomIdentifier=room["arn"], eventName="app:poll", attributes={"pollId": "42"})
    assert ID12_RE.match(response["id"])
    action = api.next_action()
    assert action.kind == Kind.SEND_EVENT
    assert action.frame_id == response["id"]
    assert action.room_id == room["id"]
    assert action.event_name == "app:poll"
    assert action.attributes == {"pollId": "42"}
    assert action.gateway_id == ""
    assert abs(action.received_ms - now_ms()) < 5000


def test_delete_message_publishes_action(api: ApiServer, ivs, room) -> None:
    response = ivs.delete_message(roomIdentifier=room["arn"], id="R1BLTDN84zE0", reason="Spam")
    action = api.next_action()
    assert action.kind == Kind.DELETE_MESSAGE
    assert action.frame_id == response["id"]
    assert response["id"] != "R1BLTDN84zE0"  # the id of the deletion event, not of the message
    assert action.message_id == "R1BLTDN84zE0"
    assert action.reason == "Spam"
    assert action.room_id == room["id"]


def test_disconnect_user_publishes_action(api: ApiServer, ivs, room) -> None:
    response = ivs.disconnect_user(roomIdentifier=room["arn"], userId="user2")
    assert {k: v for k, v in response.items() if k != "ResponseMetadata"} == {}
    action = api.next_action()
    assert action.kind == Kind.DISCONNECT_USER
    assert action.disconnect_user_id == "user2"
    assert action.reason is None
    assert action.room_id == room["id"]
    assert ID12_RE.match(action.frame_id)


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("send_event", {"eventName": "e"}),
        ("delete_message", {"id": "R1BLTDN84zE0"}),
        ("disconnect_user", {"userId": "u"}),
    ],
)
def test_actions_need_an_existing_room(api: ApiServer, ivs, operation: str, kwargs) -> None:
    with pytest.raises(ivs.exceptions.ResourceNotFoundException) as caught:
        getattr(ivs, operation)(roomIdentifier=MISSING_ROOM, **kwargs)
    assert caught.value.response["resourceId"] == "abcDEF123456"
    with pytest.raises(queue.Empty):
        api.next_action(timeout=0.2)


@pytest.mark.parametrize(
    ("operation", "kwargs", "field"),
    [
        ("send_event", {"eventName": "e" * 101}, "eventName"),
        ("send_event", {"eventName": "e", "attributes": {"a": "x" * 1100}}, "attributes"),
        ("delete_message", {"id": "R1BLTDN84zE!"}, "id"),
        ("delete_message", {"id": "R1BLTDN84zE0", "reason": "r" * 257}, "reason"),
        ("disconnect_user", {"userId": "u" * 129}, "userId"),
    ],
)
def test_action_validation(api: ApiServer, ivs, room, operation: str, kwargs, field: str) -> None:
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        getattr(ivs, operation)(roomIdentifier=room["arn"], **kwargs)
    assert [f["name"] for f in caught.value.response["fieldList"]] == [field]
    with pytest.raises(queue.Empty):
        api.next_action(timeout=0.1)
