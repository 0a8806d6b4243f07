"""Seed 001 (relay) codec, without sockets: every client frame of the seed, malformed frames,
``data`` carried losslessly, and the router's IVS frames translated to relay frames."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.protocol import State

from gateway.fanout import RoomFanout, Translated
from gateway.fronts.relay import codec
from gateway.fronts.relay.admin import AdminKeys, connection_window
from gateway.fronts.relay.rooms import RoomRefused, app_name
from gateway.wire import text_frame
from shared.features import approval
from shared.protocol import frames
from shared.protocol.envelope import ConnectionNotice, DeliveryItem, Kind, RoomDelivery

ID = "20d2e4f5-2986-427c-bc85-3d2c10fa564b"


def test_the_seed_examples_parse() -> None:
    assert codec.parse("ping") == codec.Ping()
    assert codec.parse(b"ping") == codec.Ping()
    assert codec.parse('{"to":"all","data":"pesan percobaan"}') == codec.Send("all", "pesan percobaan", None)
    assert codec.parse(f'{{"to":"{ID}","data":"pesan percobaan"}}') == codec.Send(ID, "pesan percobaan", None)
    joined = codec.parse(f'{{"to":"{ID}","data":{{"event":"join"}}}}')
    assert joined == codec.Send(ID, '{"event":"join"}', {codec.DATA_ATTRIBUTE: codec.DATA_JSON})
    key = "hfB2ZCr8PtlRPrv4i8fVOp0Zr9ChEWoPaCYjGFHr"
    assert codec.parse(f'{{"to":"system","event":"admin","key":"{key}"}}') == codec.BecomeAdmin(key)
    assert codec.parse(f'{{"to":"system","event":"approved","id":"{ID}"}}') == codec.Approve(ID)


@pytest.mark.parametrize(
    "frame",
    [
        "pong",
        "",
        "{",
        "[1,2]",
        '"ping"',
        "{}",
        '{"to":5,"data":"x"}',
        '{"to":"","data":"x"}',
        '{"to":"all"}',
        '{"to":"system"}',
        '{"to":"system","event":"nope"}',
        '{"to":"system","event":"admin"}',
        '{"to":"system","event":"approved","id":7}',
        '{"to":"system","event":"approved","id":""}',
        json.dumps({"to": "x" * 129, "data": "x"}),
        b"\xff\xfe",
        "[" * 100_000,
        '{"to":"all","data":NaN}',  # Python's json reads these; no JSON client reads them back
        '{"to":"all","data":[Infinity]}',
        '{"to":"all","data":{"x":-Infinity}}',
    ],
)
def test_malformed_frames_are_relay_errors(frame: str | bytes) -> None:
    with pytest.raises(codec.RelayError) as caught:
        codec.parse(frame)
    assert caught.value.message
    error = json.loads(codec.error(caught.value.message))
    assert error == {"from": "system", "error": caught.value.message}


@pytest.mark.parametrize(
    "data", ["text", "", 0, 1.5, True, None, [1, "a"], {"event": "join", "n": {"deep": [None]}}, "ü €"]
)
def test_data_is_carried_losslessly(data: Any) -> None:
    content, attributes = codec.encode_data(data)
    assert content  # IVS content is never empty
    assert codec.decode_data(content, attributes) == data
    assert (attributes is None) == (isinstance(data, str) and data != "")


def test_an_ivs_message_without_the_marker_is_its_text() -> None:
    assert codec.decode_data('{"a":1}', None) == '{"a":1}'
    assert codec.decode_data("{broken", {codec.DATA_ATTRIBUTE: codec.DATA_JSON}) == "{broken"


def test_server_frames_are_the_seed_shapes() -> None:
    assert json.loads(codec.welcome(ID)) == {"from": "system", "id": ID}
    assert json.loads(codec.pong()) == {"system": "pong"}
    assert json.loads(codec.admin_status(True)) == {"from": "system", "event": "admin", "status": "success"}
    assert json.loads(codec.admin_status(False)) == {"from": "system", "event": "admin", "status": "failed"}
    assert json.loads(codec.approved(ID, True)) == {
        "from": "system",
        "event": "approved",
        "id": ID,
        "status": "success",
    }
    assert json.loads(codec.new_connection(ID)) == {"from": "system", "new_id": ID}


def _message(content: str, attributes: dict[str, str] | None, sender: str = ID) -> bytes:
    return frames.message_frame(
        frame_id="abcdefghijkl",
        request_id=None,
        content=content,
        attributes=attributes,
        send_ms=0,
        sender_user_id=sender,
        sender_attributes=None,
    )


def test_messages_translate_to_from_and_data_without_the_sender() -> None:
    out = codec.translate(_message('{"event":"join"}', {codec.DATA_ATTRIBUTE: codec.DATA_JSON}))
    assert out is not None and out.sender == ID
    assert json.loads(out.payload) == {"from": ID, "data": {"event": "join"}}
    ivs = codec.translate(_message("hello from IVS", None, sender="alice"))
    assert ivs is not None and json.loads(ivs.payload) == {"from": "alice", "data": "hello from IVS"}


def test_an_ivs_user_named_system_is_not_shown_as_the_server() -> None:
    out = codec.translate(_message("I am the server", None, sender="system"))
    assert out is not None and out.sender == "system"  # still that user's own connections skipped
    assert json.loads(out.payload) == {"from": "ivs:system", "data": "I am the server"}


@pytest.mark.parametrize("content", ["NaN", "[Infinity]", '{"x":-Infinity}'])
def test_marked_content_that_is_not_strict_json_reaches_relay_clients_as_text(content: str) -> None:
    """An IVS client may send any text with the marker; relay clients must still get a JSON frame."""
    out = codec.translate(_message(content, {codec.DATA_ATTRIBUTE: codec.DATA_JSON}, sender="alice"))
    assert out is not None
    assert json.loads(out.payload, parse_constant=pytest.fail) == {"from": "alice", "data": content}


def test_approval_events_translate_for_admins() -> None:
    pending = RoomDelivery.decode(approval.pending_delivery("room", ID, ID, None, 0)).items[0]
    out = codec.translate(pending.frame)
    assert out is not None and json.loads(out.payload) == {"from": "system", "new_id": ID} and not out.sender
    approved = RoomDelivery.decode(approval.approved_delivery("room", ID, None, 0)).items[0]
    out = codec.translate(approved.frame)
    assert out is not None and json.loads(out.payload)["status"] == "success"


def test_other_events_are_not_shown_and_errors_keep_their_message() -> None:
    event = frames.event_frame(frame_id="abcdefghijkl", event_name="aws:DELETE_MESSAGE", attributes={}, send_ms=0)
    assert codec.translate(event) is None
    error = frames.error_frame(frame_id="abcdefghijkl", request_id=None, code=406, message="Message rejected")
    assert json.loads(codec.translate_error(error)) == {"from": "system", "error": "Message rejected"}
    assert json.loads(codec.translate_error(b"not json"))["error"]


def test_app_names() -> None:
    assert app_name("/my-app") == "my-app"
    assert app_name("/my-app?x=1") == "my-app"
    for bad in ("/", "/a/b", "/" + "a" * 129, "/sp%20ace"):
        with pytest.raises(RoomRefused):
            app_name(bad)


def test_admin_key_is_compared_and_attempts_are_limited() -> None:
    keys = AdminKeys("s3cret")
    assert keys.matches("s3cret") and not keys.matches("s3cre") and not keys.matches("")
    assert not AdminKeys("").matches("")  # no key configured: nobody is admin
    window = connection_window()
    allowed = [keys.allow_attempt("1.2.3.4", window, 1000) for _ in range(12)]
    assert allowed == [True] * 10 + [False] * 2
    other = connection_window()  # a new connection from the same address is still limited
    assert not keys.allow_attempt("1.2.3.4", other, 2000)
    assert keys.allow_attempt("5.6.7.8", connection_window(), 2000)
    assert keys.allow_attempt("1.2.3.4", connection_window(), 62_000)  # the window moved on


# --- the fan-out's Translator path (gateway/fanout.py), with fake sockets -------------------------
class _Ws:
    def __init__(self) -> None:
        self.protocol = SimpleNamespace(state=State.OPEN)
        self.transport = SimpleNamespace(written=[], write=None, is_closing=lambda: False)
        self.transport.write = self.transport.written.append
        self.transport.get_write_buffer_size = lambda: 0


class _Subscription:
    async def add_room(self, room_id: str) -> None:
        pass

    async def remove_room(self, room_id: str) -> None:
        pass


class _CountingTranslator:
    def __init__(self) -> None:
        self.items = 0

    def item(self, room_id: str, item: DeliveryItem) -> Translated | None:
        self.items += 1
        out = codec.translate(item.frame)
        return None if out is None else Translated(out.payload, out.sender)

    def notice(self, notice: ConnectionNotice) -> bytes | None:
        return codec.translate_error(notice.frame)


async def test_the_fanout_translates_once_per_item_and_skips_the_sender() -> None:
    translator = _CountingTranslator()
    fanout = RoomFanout(1 << 20, translator=translator)
    fanout.subscription = _Subscription()  # type: ignore[assignment]
    sockets = [_Ws() for _ in range(5)]
    approved_ones: list[Any] = []
    fanout.on_approved = approved_ones.append
    for n, ws in enumerate(sockets):
        fanout.set_pending("room", ws, receives=True)  # type: ignore[arg-type]
        await fanout.join(SimpleNamespace(connection_id=f"c{n}", room_id="room", user_id=f"c{n}", websocket=ws))
    item = DeliveryItem(Kind.SEND_MESSAGE, _message("hi", None, sender="c0"), frame_id="f1")
    fanout.on_room("room", RoomDelivery("room", [item]).encode())
    assert translator.items == 1  # once, not once per connection
    expected = text_frame(codec.translate(item.frame).payload)  # type: ignore[union-attr]
    assert [ws.transport.written for ws in sockets] == [[]] + [[expected]] * 4  # pending ones receive
    fanout.on_room("room", approval.approved_delivery("room", "c3", None, 0))
    assert approved_ones == [sockets[3]]  # its wait is over; it got nothing new (not a moderator)
    assert len(sockets[3].transport.written) == 1
    notice = ConnectionNotice("c1", frames.error_frame(frame_id="x", request_id=None, code=429, message="slow"))
    fanout.on_gateway(notice.encode())
    assert json.loads(sockets[1].transport.written[-1][2:]) == {"from": "system", "error": "slow"}
