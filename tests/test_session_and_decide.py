"""Gateway session rules and router decisions, without sockets or a bus."""

from __future__ import annotations

import json

import pytest

from gateway.session import ChatSession
from router.account import AccountRates
from router.decide import RoomState, decide
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.envelope import ActionEnvelope, Kind, RoomDelivery
from shared.protocol.frames import ErrorCode, FrameError
from shared.protocol.models import Room
from shared.protocol.tokens import ChatToken


def _session(*caps: str, rate: int = 10) -> ChatSession:
    token = ChatToken("jti", "room00000001", "alice", frozenset(caps), {"n": "A"}, 0, 10**13)
    return ChatSession(token, "conn01234567", "gw1", "127.0.0.1", 8192, SlidingWindow(rate))


def _send(content: str = "hi", request_id: str = "r1") -> str:
    return json.dumps({"Action": "SEND_MESSAGE", "RequestId": request_id, "Content": content})


def test_send_message_becomes_an_action() -> None:
    action = _session("SEND_MESSAGE").request(_send(), 1000)
    assert isinstance(action, ActionEnvelope)
    assert action.kind == Kind.SEND_MESSAGE and action.room_id == "room00000001"
    assert (action.user_id, action.user_attributes, action.content, action.request_id) == (
        "alice",
        {"n": "A"},
        "hi",
        "r1",
    )
    assert (action.gateway_id, action.connection_id, action.received_ms) == ("gw1", "conn01234567", 1000)
    assert ActionEnvelope.decode(action.encode()) == action


def test_capabilities_gate_actions() -> None:
    session = _session()
    for raw in (
        _send(),
        '{"Action":"DELETE_MESSAGE","RequestId":"d","Id":"abcdefghijkl"}',
        '{"Action":"DISCONNECT_USER","RequestId":"u","UserId":"bob"}',
    ):
        with pytest.raises(FrameError) as caught:
            session.request(raw, 0)
        assert caught.value.code == ErrorCode.FORBIDDEN
        assert caught.value.request_id == json.loads(raw)["RequestId"]
    moderator = _session("DELETE_MESSAGE", "DISCONNECT_USER")
    disconnect = moderator.request('{"Action":"DISCONNECT_USER","UserId":"bob","Reason":"x"}', 0)
    assert isinstance(disconnect, ActionEnvelope) and disconnect.disconnect_user_id == "bob"


def test_connection_rate_limit_counts_every_frame() -> None:
    session = _session("SEND_MESSAGE", rate=10)
    for i in range(5):
        session.request(_send(request_id=f"r{i}"), 100 + i)
    for i in range(5):
        with pytest.raises(FrameError):
            session.request("garbage", 200 + i)  # bad frames still count
    with pytest.raises(FrameError) as caught:
        session.request(_send(request_id="late"), 300)
    assert (caught.value.code, caught.value.request_id) == (ErrorCode.TOO_MANY_REQUESTS, "late")
    assert session.request(_send(), 1101).content == "hi"


def test_oversize_frames_get_413() -> None:
    session = _session("SEND_MESSAGE")
    with pytest.raises(FrameError) as caught:
        session.request(_send("x" * 9000), 0)
    assert caught.value.code == ErrorCode.TOO_LARGE
    with pytest.raises(FrameError) as caught:
        session.request(_send("€" * 2800), 0)  # 2800 chars but 8400 bytes
    assert caught.value.code == ErrorCode.TOO_LARGE


def _room(**kw: object) -> Room:
    return Room(id="room00000001", arn="arn:aws:ivschat:us-east-1:1:room/room00000001", **kw)  # type: ignore[arg-type]


def _action(kind: str = Kind.SEND_MESSAGE, **kw: object) -> ActionEnvelope:
    base: dict[str, object] = dict(
        kind=kind,
        frame_id="abcdefghijkl",
        room_id="room00000001",
        received_ms=1665492401723,
        request_id="r1",
        gateway_id="gw1",
        connection_id="c1",
        user_id="alice",
        content="hello",
    )
    base.update(kw)
    return ActionEnvelope(**base)  # type: ignore[arg-type]


def test_message_is_delivered_with_the_action_id() -> None:
    outcome = decide(_action(), RoomState(_room()))
    assert outcome.error is None and outcome.delivery is not None
    frame = json.loads(outcome.delivery.frame)
    assert (frame["Id"], frame["Content"], frame["Sender"]["UserId"]) == ("abcdefghijkl", "hello", "alice")
    assert frame["SendTime"] == "2022-10-11T12:46:41.723Z"


def test_room_length_limit_in_code_points() -> None:
    state = RoomState(_room(maximum_message_length=5))
    assert decide(_action(content="😀" * 5), state).delivery is not None
    outcome = decide(_action(content="😀" * 6), state)
    assert outcome.delivery is None and outcome.error is not None
    error = json.loads(outcome.error.frame)
    assert (error["ErrorCode"], error["RequestId"], outcome.gateway_id) == (400, "r1", "gw1")


def test_room_rate_limit_and_its_update() -> None:
    state = RoomState(None)
    state.configure(_room(maximum_message_rate_per_second=2))
    results = [decide(_action(received_ms=t), state) for t in (0, 1, 2)]
    assert [r.delivery is not None for r in results] == [True, True, False]
    assert json.loads(results[2].error.frame)["ErrorCode"] == 429  # type: ignore[union-attr]
    state.configure(_room(maximum_message_rate_per_second=3))
    assert decide(_action(received_ms=3), state).delivery is not None


def test_account_rate_over_all_rooms_and_its_share_per_router() -> None:
    account = AccountRates(send_message=3, delete_message=1, disconnect_user=1)
    rooms = [RoomState(_room(maximum_message_rate_per_second=100)) for _ in range(4)]
    results = [decide(_action(received_ms=t), rooms[t], account) for t in range(4)]  # 4 rooms, one each
    assert [r.delivery is not None for r in results] == [True, True, True, False]
    error = json.loads(results[3].error.frame)  # type: ignore[union-attr]
    assert error["ErrorCode"] == 429 and "SendMessage rate of 3/s over all rooms" in error["ErrorMessage"]
    assert decide(_action(received_ms=1000), rooms[0], account).delivery is not None  # a second later

    delete = _action(Kind.DELETE_MESSAGE, message_id="abcdefghijkl", reason="")
    assert decide(delete, rooms[0], account).delivery is not None
    assert decide(delete, rooms[1], account).error is not None  # 100/s in IVS, 1 here
    # the control plane's own calls were answered already and are limited by the API's TPS
    assert decide(_action(Kind.DELETE_MESSAGE, gateway_id="", message_id="abcdefghijkl"), rooms[1], account).delivery

    halved = AccountRates(send_message=3, delete_message=1, disconnect_user=1)
    halved.share(2)  # two live routers: ceil(3 / 2) each
    state = RoomState(_room(maximum_message_rate_per_second=100))
    assert [decide(_action(received_ms=t), state, halved).delivery is not None for t in range(3)] == [True, True, False]


def test_a_message_the_room_refuses_does_not_count_against_the_account() -> None:
    account = AccountRates(send_message=2, delete_message=1, disconnect_user=1)
    busy = RoomState(None)
    busy.configure(_room(maximum_message_rate_per_second=1))
    assert decide(_action(received_ms=0), busy, account).delivery is not None
    assert decide(_action(received_ms=1), busy, account).error is not None  # the room's 1/s
    other = RoomState(_room(maximum_message_rate_per_second=100))
    assert decide(_action(received_ms=2), other, account).delivery is not None  # the account's second


def test_missing_room_is_404_for_clients_and_silent_for_the_control_plane() -> None:
    outcome = decide(_action(), RoomState(None))
    assert json.loads(outcome.error.frame)["ErrorCode"] == 404  # type: ignore[union-attr]
    assert decide(_action(Kind.SEND_EVENT, gateway_id="", event_name="app:x"), RoomState(None)).error is None


def test_disconnect_user_event_then_close() -> None:
    outcome = decide(_action(Kind.DISCONNECT_USER, disconnect_user_id="bob", reason="spam"), RoomState(_room()))
    item = outcome.delivery
    assert item is not None and item.close_user_id == "bob"
    frame = json.loads(item.frame)
    assert frame["EventName"] == frames.EVENT_DISCONNECT_USER
    assert frame["Attributes"] == {"UserId": "bob", "Reason": "spam"}
    decoded = RoomDelivery.decode(RoomDelivery("room00000001", [item]).encode())
    assert decoded.items[0] == item


def test_send_event_keeps_name_and_attributes() -> None:
    outcome = decide(
        _action(Kind.SEND_EVENT, gateway_id="", request_id=None, event_name="app:poll", attributes={"p": "1"}),
        RoomState(_room()),
    )
    frame = json.loads(outcome.delivery.frame)  # type: ignore[union-attr]
    assert frame["EventName"] == "app:poll" and frame["Attributes"] == {"p": "1"} and "RequestId" not in frame
