"""Nothing a client sends can crash the gateway's frame handling: every input either becomes an
action or a FrameError carrying a valid IVS error code."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.session import ChatSession
from shared.features.ratelimit import SlidingWindow
from shared.protocol.frames import ClientRequest, ErrorCode, FrameError, parse_client_frame
from shared.protocol.tokens import ChatToken

CODES = {ErrorCode.BAD_REQUEST, ErrorCode.FORBIDDEN, ErrorCode.TOO_LARGE, ErrorCode.TOO_MANY_REQUESTS}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
frame_like = st.fixed_dictionaries(
    {},
    optional={
        "Action": st.sampled_from(["SEND_MESSAGE", "DELETE_MESSAGE", "DISCONNECT_USER", "GET_HISTORY", "X"])
        | json_values,
        "RequestId": st.text(max_size=200) | json_values,
        "Content": st.text(max_size=600) | json_values,
        "Attributes": st.dictionaries(st.text(max_size=20), st.text(max_size=300), max_size=6) | json_values,
        "Id": st.text(min_size=10, max_size=14) | json_values,
        "UserId": st.text(max_size=200) | json_values,
        "Reason": st.text(max_size=300) | json_values,
        "Limit": st.integers(-5, 200) | json_values,
        "After": st.text(min_size=11, max_size=13) | json_values,
    },
)


def _session() -> ChatSession:
    token = ChatToken("j", "room00000001", "u", frozenset({"SEND_MESSAGE", "DELETE_MESSAGE"}), {}, 0, 10**13)
    return ChatSession(token, "c", "g", "", 8192, SlidingWindow(10**9))


def _check(data: str | bytes) -> None:
    try:
        action = _session().request(data, 0)
    except FrameError as error:
        assert error.code in CODES
        assert error.request_id is None or isinstance(error.request_id, str)
    else:
        if isinstance(action, ClientRequest):  # GET_HISTORY, answered by the gateway itself
            assert action.limit >= 1
        else:
            assert action.frame_id and action.room_id == "room00000001"


@settings(max_examples=400, deadline=None)
@given(frame_like)
def test_structured_frames_never_crash(frame: dict[str, object]) -> None:
    _check(json.dumps(frame))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300) | json_values.map(json.dumps))
def test_arbitrary_frames_never_crash(data: str | bytes) -> None:
    _check(data)


def test_deep_nesting_is_refused_not_fatal() -> None:
    for depth in (4000, 100_000):  # within the frame limit, and far beyond the recursion limit
        for raw in ("[" * depth + "]" * depth, '{"Action":"SEND_MESSAGE","Content":' + "[" * depth + "]" * depth + "}"):
            with pytest.raises(FrameError) as caught:
                parse_client_frame(raw)
            assert caught.value.code == ErrorCode.BAD_REQUEST
