"""The groups-chat codec without sockets: RPC frames in, events out, IVS frames read, REST bodies."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from gateway.fronts.groupschat import auth, codec
from shared.protocol import frames
from shared.protocol.frames import ErrorFrame, read_error_frame


def test_parse_methods() -> None:
    assert codec.parse_command('{"method":20,"timestamp":1532786953431}', 8192) == codec.Command(codec.Method.EVENTS)
    send = codec.parse_command('{"method":40,"body":{"group_id":"g1","data":"Hello, how are you?"}}', 8192)
    assert send == codec.Command(codec.Method.SEND, group_id="g1", data="Hello, how are you?")
    for method in (41, 42):
        parsed = codec.parse_command(json.dumps({"method": method, "body": {"message_id": "m1"}}), 8192)
        assert parsed.method == method and parsed.message_id == "m1"
    for method in (60, 61):
        parsed = codec.parse_command(json.dumps({"method": method, "body": {"group_id": "g1"}}).encode(), 8192)
        assert parsed.method == method and parsed.group_id == "g1"


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        b"\xff",
        "[]",
        "{}",
        '{"method": 21}',
        '{"method": true}',
        '{"method": "40"}',
        '{"method": 40}',
        '{"method": 40, "body": []}',
        '{"method": 40, "body": {"group_id": "g"}}',
        '{"method": 40, "body": {"group_id": "g", "data": ""}}',
        '{"method": 40, "body": {"data": "x"}}',
        '{"method": 40, "body": {"group_id": "", "data": "x"}}',
        '{"method": 41, "body": {}}',
        '{"method": 60, "body": {"group_id": 3}}',
        '{"method": 40, "body": {"group_id": "g", "data": "\\ud800"}}',
        json.dumps({"method": 61, "body": {"group_id": "g" * 200}}),
    ],
)
def test_bad_frames(raw: str | bytes) -> None:
    with pytest.raises(codec.BadFrame) as error:
        codec.parse_command(raw, 8192)
    assert error.value.reason


def test_frame_size_limit() -> None:
    frame = json.dumps({"method": 40, "body": {"group_id": "g", "data": "é" * 100}}, ensure_ascii=False)
    with pytest.raises(codec.BadFrame, match="at most 150 bytes"):
        codec.parse_command(frame, 150)
    assert codec.parse_command(frame, 300).data == "é" * 100


def test_events_are_the_seed_shape() -> None:
    raw = codec.encode(codec.Event.MESSAGE_SENT, 1532786953431, {"message_id": "f0b8"})
    assert json.loads(raw) == {"type": 21, "timestamp": 1532786953431, "body": {"message_id": "f0b8"}}
    assert codec.logged("g1", raw) == codec.Logged(21, 1532786953431, {"message_id": "f0b8"}, raw)
    error = json.loads(codec.error(5, 403, "no", 40, group_id="g"))
    assert error == {"type": 10, "timestamp": 5, "body": {"code": 403, "message": "no", "method": 40, "group_id": "g"}}


def ivs_message(content: str, request_id: str | None = None) -> bytes:
    """The MESSAGE frame M1 from u1, as routers deliver it (and keep it in user logs)."""
    return frames.message_frame(
        frame_id="M1",
        request_id=request_id,
        content=content,
        attributes=None,
        send_ms=1_700_000_000_123,
        sender_user_id="u1",
        sender_attributes=None,
    )


def test_ivs_frames_become_events() -> None:
    message = ivs_message("hi", "r1")
    item = codec.delivered(message)
    assert item is not None and item.request_id == "r1" and item.send_ms == 1_700_000_000_123
    kind, raw = codec.event_of(item, "g1") or (None, b"")
    assert kind == codec.Event.MESSAGE
    assert json.loads(raw) == {
        "type": 20,
        "timestamp": 1_700_000_000_123,
        "body": {"message_id": "M1", "data": "hi", "group_id": "g1", "user_id": "u1"},
    }
    for name, expected in (("parley:DELIVERED", 22), ("parley:READ", 23)):
        event = frames.event_frame(
            frame_id="E1",
            event_name=name,
            attributes={"MessageId": "M1"},
            send_ms=5,
            sender_user_id="u2",
            recipient="u1",
        )
        read = codec.delivered(event)
        assert read is not None and read.recipient == "u1"
        kind, raw = codec.event_of(read, "g1") or (None, b"")
        assert kind == expected and json.loads(raw)["body"]["message_id"] == "M1"
    for name, expected in (("parley:TYPING_START", 40), ("parley:TYPING_STOP", 41)):
        event = frames.event_frame(frame_id="E2", event_name=name, attributes={}, send_ms=5, sender_user_id="u2")
        read = codec.delivered(event)
        assert read is not None
        kind, raw = codec.event_of(read, "g1") or (None, b"")
        assert kind == expected and json.loads(raw)["body"] == {"group_id": "g1", "user_id": "u2"}
    other = frames.event_frame(frame_id="E3", event_name="parley:MEMBER_ADDED", attributes={}, send_ms=5)
    read = codec.delivered(other)
    assert read is not None and codec.event_of(read, "g1") is None
    error = frames.error_frame(frame_id="X1", request_id="r1", code=406, message="Message rejected by review")
    assert codec.delivered(error) is None
    assert read_error_frame(error) == ErrorFrame("r1", 406, "Message rejected by review")
    assert read_error_frame(message) is None


def test_log_entries_become_events() -> None:
    """A router-kept IVS frame is re-encoded as its event; this front's own events are sent as is."""
    message = ivs_message("from ivs")
    event = codec.logged("g1", message)
    assert event is not None and (event.kind, event.timestamp) == (20, 1_700_000_000_123)
    assert event.body == {"message_id": "M1", "data": "from ivs", "group_id": "g1", "user_id": "u1"}
    assert json.loads(event.raw) == {"type": 20, "timestamp": 1_700_000_000_123, "body": event.body}
    joined = codec.encode(codec.Event.USER_JOINED, 7, {"group_id": "g1", "user_id": "u2"})
    assert codec.logged("g1", joined) == codec.Logged(72, 7, {"group_id": "g1", "user_id": "u2"}, joined)
    deleted = frames.event_frame(frame_id="E1", event_name="aws:DELETE_MESSAGE", attributes={}, send_ms=5)
    assert codec.logged("g1", deleted) is None


def test_rest_bodies() -> None:
    group = codec.parse_group(b'{"name": "group_1", "user_ids": ["a", "b", "a"]}', 10)
    assert group == codec.CreateGroup("group_1", ["a", "b"])
    for bad in (b"{", b"[]", b'{"name": ""}', b'{"name": "g", "user_ids": [1]}', b'{"name": "g", "user_ids": "a"}'):
        with pytest.raises(codec.BadBody):
            codec.parse_group(bad, 10)
    with pytest.raises(codec.BadBody):
        codec.parse_group(json.dumps({"name": "g", "user_ids": [str(i) for i in range(11)]}).encode(), 10)
    assert codec.string({"email": 3} | {"email": ""}, "email", required=False) == ""
    with pytest.raises(codec.BadBody):
        codec.string({}, "username")


def test_tokens() -> None:
    secret = "s" * 40
    token = auth.issue("u1", secret, 60)
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["user_id"] == "u1" and claims["exp"] > time.time()
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert auth.user_of(token, secret) == "u1"
    for bad in (
        "",
        "x" * 5000,
        "not.a.token",
        auth.issue("u1", "t" * 40, 60),
        auth.issue("u1", secret, -60),
        jwt.encode({"user_id": "u1"}, secret, algorithm="HS256"),  # no exp
        jwt.encode({"exp": int(time.time()) + 60}, secret, algorithm="HS256"),  # no user_id
        jwt.encode({"exp": int(time.time()) + 60, "user_id": 3}, secret, algorithm="HS256"),
    ):
        with pytest.raises(auth.InvalidToken):
            auth.user_of(bad, secret)
    with pytest.raises(auth.InvalidToken):
        auth.user_of(token, "")
    assert auth.bearer("bearer abc") == "abc" and auth.bearer("Bearer abc") == "abc"
    assert auth.bearer("Basic abc") == "" and auth.bearer(None) == ""
