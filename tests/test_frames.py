"""The messaging protocol's frames: parsing client frames, encoding server frames."""

from __future__ import annotations

import json

import pytest

from shared.protocol import frames
from shared.protocol.frames import Action, ErrorCode, FrameError, parse_client_frame
from shared.protocol.ids import ID12_RE, new_id, parse_arn, room_arn
from shared.protocol.timestamps import iso_ms, parse_iso


def test_sdk_send_message_frame_parses() -> None:
    raw = (
        '{"Action":"SEND_MESSAGE","RequestId":"14fbc8da-f2c6-47d5-95f3-6b4a54b9ed3a",'
        '"Content":"hi","Attributes":{"a":"b"}}'
    )
    request = parse_client_frame(raw)
    assert request.action is Action.SEND_MESSAGE
    assert request.request_id == "14fbc8da-f2c6-47d5-95f3-6b4a54b9ed3a"
    assert request.content == "hi" and request.attributes == {"a": "b"}


def test_delete_and_disconnect_frames_parse() -> None:
    delete = parse_client_frame('{"Action":"DELETE_MESSAGE","Id":"abcdefghijkl","Reason":"spam"}')
    assert (delete.action, delete.message_id, delete.reason, delete.request_id) == (
        Action.DELETE_MESSAGE,
        "abcdefghijkl",
        "spam",
        None,
    )
    disconnect = parse_client_frame('{"Action":"DISCONNECT_USER","RequestId":"r","UserId":"u2"}')
    assert (disconnect.disconnect_user_id, disconnect.reason) == ("u2", None)


@pytest.mark.parametrize(
    ("raw", "code", "request_id"),
    [
        ("not json", ErrorCode.BAD_REQUEST, None),
        ("[1,2]", ErrorCode.BAD_REQUEST, None),
        ('{"RequestId":"r1"}', ErrorCode.BAD_REQUEST, "r1"),
        ('{"Action":"SHOUT","RequestId":"r2"}', ErrorCode.BAD_REQUEST, "r2"),
        ('{"Action":"SEND_MESSAGE","RequestId":"r3"}', ErrorCode.BAD_REQUEST, "r3"),
        ('{"Action":"SEND_MESSAGE","RequestId":"r4","Content":""}', ErrorCode.BAD_REQUEST, "r4"),
        ('{"Action":"SEND_MESSAGE","RequestId":"r5","Content":5}', ErrorCode.BAD_REQUEST, "r5"),
        ('{"Action":"SEND_MESSAGE","RequestId":"r6","Content":"x","Attributes":{"a":1}}', ErrorCode.BAD_REQUEST, "r6"),
        ('{"Action":"SEND_MESSAGE","RequestId":"r7","Content":"x","Attributes":["a"]}', ErrorCode.BAD_REQUEST, "r7"),
        ('{"Action":"DELETE_MESSAGE","RequestId":"r8","Id":"short"}', ErrorCode.BAD_REQUEST, "r8"),
        ('{"Action":"DISCONNECT_USER","RequestId":"r9"}', ErrorCode.BAD_REQUEST, "r9"),
        ('{"Action":"SEND_MESSAGE","RequestId":7,"Content":"x"}', ErrorCode.BAD_REQUEST, None),
    ],
)
def test_malformed_frames_get_their_error_code(raw: str, code: int, request_id: str | None) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(raw)
    assert caught.value.code == code
    assert caught.value.request_id == request_id


def test_binary_frames_are_refused() -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(b'{"Action":"SEND_MESSAGE","Content":"x"}')
    assert caught.value.code == ErrorCode.BAD_REQUEST


def test_size_limits_use_their_own_codes() -> None:
    big = {"k": "v" * 1100}
    with pytest.raises(FrameError) as caught:
        parse_client_frame(json.dumps({"Action": "SEND_MESSAGE", "Content": "x", "Attributes": big}))
    assert caught.value.code == ErrorCode.TOO_LARGE
    with pytest.raises(FrameError) as caught:
        parse_client_frame(json.dumps({"Action": "DISCONNECT_USER", "UserId": "u", "Reason": "r" * 257}))
    assert caught.value.code == ErrorCode.TOO_LARGE
    # 500 code points is fine even when that is 2000 UTF-8 bytes
    assert parse_client_frame(json.dumps({"Action": "SEND_MESSAGE", "Content": "😀" * 500})).content == "😀" * 500
    with pytest.raises(FrameError):
        parse_client_frame(json.dumps({"Action": "SEND_MESSAGE", "Content": "😀" * 501}))


def test_attribute_size_counts_utf8_bytes() -> None:
    exactly = {"é": "a" * (1024 - 2)}
    assert frames.attributes_size(exactly) == 1024
    assert frames.check_attributes(exactly, "Attributes", None) == exactly
    with pytest.raises(FrameError):
        frames.check_attributes({"é": "a" * 1023}, "Attributes", None)


def test_message_frame_has_the_sdk_fields() -> None:
    raw = frames.message_frame(
        frame_id="50PsDdX18qcJ",
        request_id="rid",
        content="héllo",
        attributes=None,
        send_ms=1665492401723,
        sender_user_id="user1",
        sender_attributes={"displayName": "Demo"},
    )
    frame = json.loads(raw)
    assert frame == {
        "Type": "MESSAGE",
        "Id": "50PsDdX18qcJ",
        "RequestId": "rid",
        "Content": "héllo",
        "Attributes": {},
        "SendTime": "2022-10-11T12:46:41.723Z",
        "Sender": {"UserId": "user1", "Attributes": {"displayName": "Demo"}},
    }
    assert "héllo".encode() in raw  # UTF-8, not \u escapes


def test_delete_event_carries_both_message_id_keys() -> None:
    frame = json.loads(
        frames.event_frame(
            frame_id="AYk6xKitV40n",
            event_name=frames.EVENT_DELETE_MESSAGE,
            attributes=frames.delete_message_attributes("R1BLTDN84zE0", "Spam"),
            send_ms=0,
            request_id="x",
        )
    )
    assert frame["Attributes"] == {"MessageId": "R1BLTDN84zE0", "MessageID": "R1BLTDN84zE0", "Reason": "Spam"}
    assert frame["Type"] == "EVENT" and frame["RequestId"] == "x"


def test_error_frame_code_is_a_number() -> None:
    frame = json.loads(frames.error_frame(frame_id="IG5mcmlvdGlv", request_id=None, code=400, message="bad"))
    assert frame == {"Type": "ERROR", "Id": "IG5mcmlvdGlv", "ErrorCode": 400, "ErrorMessage": "bad"}


def test_ids_and_times() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(ID12_RE.match(i) for i in ids)
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert parse_iso(iso_ms(1665492401723)) == 1665492401723
    assert parse_arn(room_arn("us-west-2", "123456789012", "abcDEF123456")) == ("room", "abcDEF123456")
    assert parse_arn("arn:aws:ivschat:us-west-2:1:channel/x") is None


def test_times_cross_second_and_day_boundaries() -> None:
    """iso_ms keeps the formatted second between calls; each call must still be exact."""
    for ms, text in [
        (999, "1970-01-01T00:00:00.999Z"),
        (1000, "1970-01-01T00:00:01.000Z"),
        (86_399_999, "1970-01-01T23:59:59.999Z"),
        (86_400_000, "1970-01-02T00:00:00.000Z"),
        (999, "1970-01-01T00:00:00.999Z"),  # back again: no stale second
    ]:
        assert iso_ms(ms) == text


def test_server_frames_are_json_dumps_bytes_for_every_code_point() -> None:
    """Server frames are encoded with orjson; clients see exactly the bytes
    json.dumps(frame, ensure_ascii=False, separators=(",", ":")) would give."""
    code_points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for start in range(0, len(code_points), 512):
        text = "".join(code_points[start : start + 512])
        frame = frames.message_frame(
            frame_id="abcdefghijkl",
            request_id=text[:8],
            content=text,
            attributes={text[:4]: text[-4:]},
            send_ms=1665492401723,
            sender_user_id=text[:16],
            sender_attributes={"k": text},
        )
        expected = json.dumps(json.loads(frame), ensure_ascii=False, separators=(",", ":")).encode()
        assert frame == expected
        assert json.loads(frame)["Content"] == text
