"""Connection lifecycle (parley extensions): PING/PONG, the idle timeout (close 4003) and
per-room connection approval (pending → parley:CONNECTION_PENDING to moderators →
APPROVE_CONNECTION → parley:CONNECTION_APPROVED, or close 4004), on both backends."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from gateway.session import ChatSession
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.closecodes import CloseCode
from shared.protocol.frames import Action, ClientRequest, ErrorCode, FrameError
from shared.protocol.tokens import ChatToken
from tests.nodes import make_room, mint_token, ws_url

MODERATOR = ("SEND_MESSAGE", "DISCONNECT_USER")


# --- parsing and session rules ------------------------------------------------------------------
def test_ping_and_approve_parse() -> None:
    assert frames.parse_client_frame('{"Action":"PING","RequestId":"r"}') == ClientRequest(Action.PING, "r")
    request = frames.parse_client_frame('{"Action":"APPROVE_CONNECTION","ConnectionId":"abcdefghijkl"}')
    assert request.action is Action.APPROVE_CONNECTION and request.connection_id == "abcdefghijkl"
    for body in ('{"Action":"APPROVE_CONNECTION"}', '{"Action":"APPROVE_CONNECTION","ConnectionId":"x"}'):
        with pytest.raises(FrameError) as caught:
            frames.parse_client_frame(body)
        assert caught.value.code == ErrorCode.BAD_REQUEST


def _session(*caps: str, pending: bool = False) -> ChatSession:
    token = ChatToken("t", "room", "u", frozenset(caps))
    return ChatSession(token, "c", "gw", "", rate=SlidingWindow(10), event_rate=SlidingWindow(5), pending=pending)


def test_pending_connections_may_only_ping() -> None:
    session = _session("SEND_MESSAGE", pending=True)
    assert isinstance(session.request('{"Action":"PING"}', 0), ClientRequest)
    for body in ('{"Action":"SEND_MESSAGE","Content":"x"}', '{"Action":"GET_HISTORY"}'):
        with pytest.raises(FrameError) as caught:
            session.request(body, 0)
        assert caught.value.code == ErrorCode.FORBIDDEN and "approval" in caught.value.message
    session.pending = False
    assert session.request('{"Action":"SEND_MESSAGE","Content":"x"}', 0).kind == "SendMessage"  # type: ignore[union-attr]


def test_approving_needs_disconnect_user() -> None:
    body = '{"Action":"APPROVE_CONNECTION","ConnectionId":"abcdefghijkl"}'
    with pytest.raises(FrameError) as caught:
        _session("SEND_MESSAGE").request(body, 0)
    assert caught.value.code == ErrorCode.FORBIDDEN
    assert isinstance(_session("DISCONNECT_USER").request(body, 0), ClientRequest)


def test_pings_count_against_the_event_window_not_the_messaging_quota() -> None:
    session = _session("SEND_MESSAGE")
    for _ in range(5):
        session.request('{"Action":"PING"}', 0)
    with pytest.raises(FrameError) as caught:
        session.request('{"Action":"PING"}', 0)
    assert caught.value.code == ErrorCode.TOO_MANY_REQUESTS
    for n in range(10):
        session.request(f'{{"Action":"SEND_MESSAGE","Content":"{n}"}}', 0)


# --- data plane ------------------------------------------------------------------------------------
async def test_ping_is_answered_with_pong(node: Node) -> None:
    room = await make_room(node)
    client = await ChatClient.open(ws_url(node), mint_token(node, room, "alice"))
    rid = await client.send("PING")
    pong = await client.expect(Type="PONG")
    assert pong["RequestId"] == rid and len(pong["Id"]) == 12 and pong["SendTime"].endswith("Z")
    await client.close()


async def _closed(client: ChatClient, timeout: float) -> int | None:
    try:
        while True:
            await client.recv(timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_idle_connections_are_closed_and_active_ones_are_not(node: Node) -> None:
    assert node.gateway is not None
    node.gateway.settings = node.settings.with_(idle_timeout=0.6)  # pings every 30 s: none in this test
    room = await make_room(node)
    idle = await ChatClient.open(ws_url(node), mint_token(node, room, "idle"))
    busy = await ChatClient.open(ws_url(node), mint_token(node, room, "busy"))

    async def keep_busy() -> None:
        for _ in range(6):
            await busy.send("PING")
            await asyncio.sleep(0.25)

    pinger = asyncio.create_task(keep_busy())
    assert await _closed(idle, 3) == CloseCode.IDLE_TIMEOUT
    await pinger
    assert busy.ws.close_code is None  # 1.5 s with a frame every 0.25 s: still open
    assert await _closed(busy, 3) == CloseCode.IDLE_TIMEOUT  # then it falls silent too


async def test_answering_websocket_pings_counts_as_activity(node: Node) -> None:
    assert node.gateway is not None
    node.gateway.settings = node.settings.with_(idle_timeout=0.6)
    room = await make_room(node)
    client = await ChatClient.open(ws_url(node), mint_token(node, room, "quiet"))
    for _ in range(6):  # the client never sends a frame, but its pongs answer the server's pings
        await asyncio.sleep(0.2)
        server_side = next(iter(node.gateway.fanout.connections()))
        await server_side.ping()
    assert client.ws.close_code is None
    await client.close()


async def test_approval_required_room(node: Node) -> None:
    assert node.gateway is not None
    room = await make_room(node, approval_required=True)
    mod = await ChatClient.open(ws_url(node), mint_token(node, room, "mod", MODERATOR))
    guest = await ChatClient.open(ws_url(node), mint_token(node, room, "guest"))
    pending = await mod.expect(Type="EVENT", EventName=frames.EVENT_CONNECTION_PENDING)
    assert pending["Attributes"]["UserId"] == "guest" and pending["Sender"]["UserId"] == "guest"
    connection_id = pending["Attributes"]["ConnectionId"]

    await mod.send_message("before approval")  # moderators are never pending
    await mod.expect(Type="MESSAGE")
    rid = await guest.send_message("let me in")
    assert (await guest.expect(Type="ERROR", RequestId=rid))["ErrorCode"] == ErrorCode.FORBIDDEN
    rid = await guest.send("PING")
    assert (await guest.expect(Type="PONG"))["RequestId"] == rid
    assert [f["Type"] for f in guest.frames] == ["ERROR", "PONG"]  # the room's message never came

    rid = await mod.send("APPROVE_CONNECTION", ConnectionId=connection_id)
    approved = await mod.expect(Type="EVENT", RequestId=rid)
    assert approved["EventName"] == frames.EVENT_CONNECTION_APPROVED
    assert approved["Attributes"] == {"ConnectionId": connection_id}
    assert await guest.expect(Type="EVENT") == approved
    await mod.send_message("after approval")
    assert (await guest.expect(Type="MESSAGE"))["Content"] == "after approval"
    rid = await guest.send_message("thanks")
    assert (await mod.expect(Type="MESSAGE", RequestId=rid))["Content"] == "thanks"
    await guest.close()
    await mod.close()


async def test_unapproved_connections_are_closed_4004(node: Node) -> None:
    assert node.gateway is not None
    node.gateway.settings = node.settings.with_(approval_timeout=0.5)
    room = await make_room(node, approval_required=True)
    guest = await ChatClient.open(ws_url(node), mint_token(node, room, "guest"))
    assert await _closed(guest, 3) == CloseCode.NOT_APPROVED
    open_room = await make_room(node)  # rooms without approvalRequired: nobody waits
    member = await ChatClient.open(ws_url(node), mint_token(node, open_room, "member"))
    await member.send_message("hi")
    assert (await member.expect(Type="MESSAGE"))["Content"] == "hi"
    await asyncio.sleep(0.7)
    assert member.ws.close_code is None
    await member.close()


async def test_an_approval_timeout_of_zero_means_no_deadline(node: Node) -> None:
    """PARLEY_APPROVAL_TIMEOUT=0 means what it means on the relay front: no deadline, not close at once."""
    assert node.gateway is not None
    node.gateway.settings = node.settings.with_(approval_timeout=0.0)
    room = await make_room(node, approval_required=True)
    guest = await ChatClient.open(ws_url(node), mint_token(node, room, "guest"))
    await asyncio.sleep(0.5)
    assert guest.ws.close_code is None
    await guest.close()
