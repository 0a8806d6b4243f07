"""Seed 004 (PLIC-Chat) codec and token checks, pure: no sockets, no store."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from gateway.fronts.plic import auth, codec
from shared.protocol import frames

SECRET = "plic-test-secret-plic-test-secret"


def test_parse_send_message() -> None:
    raw = json.dumps({"type": "SendMessage", "data": {"room_id": 7, "message": "hi", "message_temp_id": "t1"}})
    assert codec.parse_command(raw, 8192) == codec.SendMessage(7, "hi", "t1")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"data": {}}',
        '{"type": "Nope", "data": {}}',
        '{"type": "SendMessage"}',
        '{"type": "SendMessage", "data": {"room_id": "7", "message": "x", "message_temp_id": "t"}}',
        '{"type": "SendMessage", "data": {"room_id": true, "message": "x", "message_temp_id": "t"}}',
        '{"type": "SendMessage", "data": {"room_id": 1, "message": 5, "message_temp_id": "t"}}',
        '{"type": "SendMessage", "data": {"room_id": 1, "message": "x"}}',
        '{"type": "SendMessage", "data": {"room_id": 1, "message": "\\ud800", "message_temp_id": "t"}}',
        b"\xff\xfe",
    ],
)
def test_bad_structure(raw: str | bytes) -> None:
    with pytest.raises(codec.BadFrame):
        codec.parse_command(raw, 8192)


def test_frame_size_limit() -> None:
    body: dict[str, Any] = {
        "type": "SendMessage",
        "data": {"room_id": 1, "message": "é" * 5000, "message_temp_id": "t"},
    }
    with pytest.raises(codec.BadFrame, match="at most 8192 bytes"):
        codec.parse_command(json.dumps(body, ensure_ascii=False), 8192)
    with pytest.raises(codec.BadFrame):
        codec.parse_command(json.dumps({**body, "data": {**body["data"], "message_temp_id": "x" * 200}}), 1 << 16)


def test_encoders() -> None:
    assert json.loads(codec.message_received(3, "u1", "yo")) == {
        "type": "MessageReceived",
        "data": {"room_id": 3, "sender_id": "u1", "message": "yo"},
    }
    assert json.loads(codec.confirmation("t", confirmed=True, message_id="m")) == {
        "type": "MessageSentConfirmation",
        "data": {"confirmed": True, "reason": "", "message_id": "m", "message_temp_id": "t"},
    }
    assert json.loads(codec.disconnection(4010, "bad")) == {
        "type": "Disconnection",
        "data": {"code": 4010, "reason": "bad"},
    }
    assert json.loads(codec.reply(5)) == {"error_message": None, "data": 5}
    assert len(codec.close_reason("é" * 200).encode()) <= codec.MAX_REASON_LENGTH


def test_ivs_frames() -> None:
    frame = frames.message_frame(
        frame_id="abcdefghijkl",
        request_id="r1",
        content="hello",
        attributes=None,
        send_ms=0,
        sender_user_id="u1",
        sender_attributes=None,
    )
    message = codec.ivs_message(frame)
    assert message is not None and (message.message_id, message.request_id, message.sender_id, message.content) == (
        "abcdefghijkl",
        "r1",
        "u1",
        "hello",
    )
    error = frames.read_error_frame(
        frames.error_frame(frame_id="abcdefghijkl", request_id="r1", code=406, message="no")
    )
    assert error == frames.ErrorFrame("r1", 406, "no")
    assert codec.ivs_message(b'{"Type":"EVENT"}') is None
    assert codec.error_close(406) is codec.Close.HATEFUL_SPEECH
    assert codec.error_close(403) is codec.Close.UNAUTHORIZED_ACTION
    assert codec.error_close(429) is None


def test_rest_bodies() -> None:
    assert codec.parse_create(b'{"users": ["a", "b", "a"], "apartment_id": 4}', 10) == codec.CreateRoom(["a", "b"], 4)
    assert codec.parse_create(b'{"users": [], "apartment_id": null}', 10) == codec.CreateRoom([], None)
    assert codec.parse_update(b'{"room_id": 2, "users_to_add": ["x"], "users_to_remove": []}', 10) == codec.UpdateRoom(
        2, ["x"], []
    )
    for bad in (b"{", b"[]", b'{"users": "a"}', b'{"users": [1]}', b'{"users": ["a"], "apartment_id": "x"}'):
        with pytest.raises(codec.BadBody):
            codec.parse_create(bad, 10)
    with pytest.raises(codec.BadBody):
        codec.parse_create(json.dumps({"users": [str(i) for i in range(11)]}).encode(), 10)
    with pytest.raises(codec.BadBody):
        codec.parse_update(b'{"room_id": "2"}', 10)
    assert codec.parse_room_id("12") == 12
    for text in ("x", "-1", "0", "1" * 20, "١"):
        with pytest.raises(codec.BadBody):
            codec.parse_room_id(text)


def _token(**claims: object) -> str:
    return jwt.encode({"sub": "user-1", "exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256")


def test_tokens() -> None:
    assert auth.user_of(_token(), SECRET) == "user-1"
    for bad in (
        _token(exp=int(time.time()) - 60),
        jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),  # no sub
        jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, "another-secret-another-secret!!!!", algorithm="HS256"),
        jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, SECRET * 2, algorithm="HS512"),
        "garbage",
        "",
        "x" * 10_000,
    ):
        with pytest.raises(auth.InvalidToken):
            auth.user_of(bad, SECRET)
    with pytest.raises(auth.InvalidToken):
        auth.user_of(_token(), "")
    assert auth.bearer("Bearer abc") == "abc"
    assert auth.bearer("bearer abc") == "abc"
    assert auth.bearer("Basic abc") == ""
    assert auth.bearer(None) == ""
