"""Validating patterns match the whole input: ``$`` also matches before a final newline, so an id,
ARN or date followed by ``"\\n"`` must not pass."""

from __future__ import annotations

import json

import pytest

from api.errors import AccessDeniedException
from api.sigv4 import verify
from logger_sink import layout
from shared.protocol.frames import ErrorCode, FrameError, parse_client_frame
from shared.protocol.ids import ID12_RE, parse_arn, room_arn

VALID_ID = "abcdefghijkl"
ARN = room_arn("us-east-1", "123456789012", VALID_ID)


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "x"])
def test_an_id12_with_anything_after_it_is_not_an_id(suffix: str) -> None:
    assert ID12_RE.fullmatch(VALID_ID)
    assert not ID12_RE.match(VALID_ID + suffix)
    assert not ID12_RE.fullmatch(VALID_ID + suffix)


@pytest.mark.parametrize(
    "frame",
    [
        {"Action": "DELETE_MESSAGE", "Id": VALID_ID + "\n"},
        {"Action": "GET_HISTORY", "After": VALID_ID + "\n"},
        {"Action": "APPROVE_CONNECTION", "ConnectionId": VALID_ID + "\n"},
        {"Action": "SEND_EVENT", "EventName": "parley:READ", "Attributes": {"MessageId": VALID_ID + "\n"}},
        {"Action": "SEND_EVENT", "EventName": "app:typing\n"},
    ],
)
def test_client_frames_refuse_ids_with_a_trailing_newline(frame: dict[str, object]) -> None:
    frame["RequestId"] = "r1"
    with pytest.raises(FrameError) as caught:
        parse_client_frame(json.dumps(frame))
    assert (caught.value.code, caught.value.request_id) == (ErrorCode.BAD_REQUEST, "r1")


def test_the_same_frames_without_the_newline_parse() -> None:
    assert parse_client_frame(json.dumps({"Action": "DELETE_MESSAGE", "Id": VALID_ID})).message_id == VALID_ID
    assert parse_client_frame(json.dumps({"Action": "GET_HISTORY", "After": VALID_ID})).after == VALID_ID


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "/x", " "])
def test_an_arn_with_anything_after_it_is_not_an_arn(suffix: str) -> None:
    assert parse_arn(ARN) == ("room", VALID_ID)
    assert parse_arn(ARN + suffix) is None


def _sigv4_headers(amz_date: str) -> dict[str, list[str]]:
    credential = f"AKID/{amz_date[:8]}/us-east-1/ivschat/aws4_request"
    authorization = f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
    return {
        "authorization": [authorization],
        "host": ["localhost"],
        "x-amz-date": [amz_date],
    }


def test_sigv4_refuses_a_date_with_a_trailing_newline_as_malformed() -> None:
    # Before: the pattern passed it and strptime raised ValueError (a 500, not an AccessDenied).
    with pytest.raises(AccessDeniedException, match="X-Amz-Date is missing or malformed"):
        verify(
            method="POST",
            raw_path="/ListRooms",
            headers=_sigv4_headers("20240101T000000Z\n"),
            body=b"",
            access_key_id="AKID",
            secret_access_key="secret",
            region="us-east-1",
            now=1704067200.0,
        )


def test_a_chat_log_key_with_a_trailing_newline_carries_no_minute() -> None:
    key = layout.s3_key("123456789012", "us-west-2", VALID_ID, 1665769212345, layout.object_hash(b"x"))
    assert layout.s3_key_minute_ms(key) is not None
    assert layout.s3_key_minute_ms(key + "\n") is None
