"""The ``line`` front (seed 000) end to end, over both backends, with a client written only from
the seed document: a TCP socket, ``COMMAND PARAMETER1 PARAMETER2`` lines, replies read up to the
empty line that ends each."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import RecordKind
from shared.features import accounts, bans
from shared.features.accounts import create_account
from shared.protocol.envelope import ActionEnvelope, ControlNotice, ControlTopic, Kind
from shared.protocol.ids import new_id
from shared.protocol.models import Room
from tests.nodes import BACKENDS, mint_token, started_node, ws_url

TOKEN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MESSI = {"nama": "Lionel Messi", "negara": "Argentina"}
HENDERSON = {"nama": "Jordan Henderson", "negara": "Inggris"}


class LineClient:
    """What a seed-000 user types and reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, node: Node) -> LineClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.fronts["line"].port)
        return cls(reader, writer)

    async def ask(self, line: str | bytes, ending: bytes = b"\r\n") -> str:
        self.writer.write((line.encode() if isinstance(line, str) else line) + ending)
        return await self.read()

    async def read(self) -> str:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        return raw[:-4].decode()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture(params=BACKENDS)
async def node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    async with started_node(request, settings.with_(login_attempts_per_user=5), fronts=("line",)) as started:
        await create_account(started.store, "messi", "surabaya", attributes=MESSI)
        await create_account(started.store, "henderson", "surabaya", attributes=HENDERSON)
        await create_account(started.store, "plain", "secret")  # no nama attribute
        yield started


async def _login(node: Node, username: str, password: str = "surabaya") -> tuple[LineClient, str]:
    client = await LineClient.open(node)
    reply = await client.ask(f"auth {username} {password}")
    match = re.fullmatch(rf"username {username} logged in, token ({TOKEN})", reply)
    assert match, reply
    return client, match[1]


async def test_auth_replies_as_the_seed(node: Node) -> None:
    client = await LineClient.open(node)
    assert await client.ask("auth nobody surabaya") == "Error, User Tidak Ada"
    assert await client.ask("auth messi wrong") == "Error, Password Salah"
    reply = await client.ask("auth messi surabaya")
    assert re.fullmatch(rf"username messi logged in, token {TOKEN}", reply), reply
    assert (await client.ask("auth messi", b"\n")).startswith("Error, ")  # missing password
    await client.close()


@pytest.mark.parametrize("command", ["send henderson hi", "inbox", "show", "logout"])
async def test_commands_need_a_login(node: Node, command: str) -> None:
    client = await LineClient.open(node)
    assert await client.ask(command) == "Error, not authorized"
    await client.close()


async def test_send_then_inbox_as_the_seed_shows(node: Node) -> None:
    messi, _ = await _login(node, "messi")
    assert await messi.ask("send henderson hello gimana kabarnya son") == "message sent to henderson"
    assert await messi.ask("send henderson woi") == "message sent to henderson"  # henderson is offline
    assert await messi.ask("send nobody hi") == "Error, User Tidak Ditemukan"
    henderson, _ = await _login(node, "henderson")
    assert await henderson.ask("inbox") == (
        '{"messi": [{"msg_from": "Lionel Messi", "msg_to": "Jordan Henderson", '
        '"msg": " hello gimana kabarnya son \\r\\n"}, '
        '{"msg_from": "Lionel Messi", "msg_to": "Jordan Henderson", "msg": " woi \\r\\n"}]}'
    )
    assert await henderson.ask("inbox") == "{}"  # read and cleared
    assert await messi.ask("inbox") == "{}"  # the sender's own inbox holds nothing
    for client in (messi, henderson):
        await client.close()


async def test_inbox_groups_by_sender_in_arrival_order_and_falls_back_to_username(node: Node) -> None:
    messi, _ = await _login(node, "messi")
    plain, _ = await _login(node, "plain", "secret")
    henderson, _ = await _login(node, "henderson")
    assert await messi.ask("send plain one") == "message sent to plain"
    assert await henderson.ask("send plain two") == "message sent to plain"
    assert await messi.ask("send plain three") == "message sent to plain"
    assert await plain.ask("send messi back") == "message sent to messi"
    assert json.loads(await plain.ask("inbox")) == {
        "messi": [
            {"msg_from": "Lionel Messi", "msg_to": "plain", "msg": " one \r\n"},
            {"msg_from": "Lionel Messi", "msg_to": "plain", "msg": " three \r\n"},
        ],
        "henderson": [{"msg_from": "Jordan Henderson", "msg_to": "plain", "msg": " two \r\n"}],
    }
    assert json.loads(await messi.ask("inbox")) == {
        "plain": [{"msg_from": "plain", "msg_to": "Lionel Messi", "msg": " back \r\n"}]
    }
    for client in (messi, plain, henderson):
        await client.close()


async def test_show_lists_the_online_users_table(node: Node) -> None:
    messi, messi_token = await _login(node, "messi")
    henderson, henderson_token = await _login(node, "henderson")
    reply = await messi.ask("show")
    title, header, usernames, details = reply.split("\n")
    assert title == "Daftar User Online"
    assert header.split() == [henderson_token, messi_token]  # by username
    assert usernames.split() == ["username", "henderson", "messi"]
    assert details.startswith("userdetail")
    assert "{'nama': 'Jordan Henderson', 'negara': 'Inggris'}" in details
    assert "{'nama': 'Lionel Messi', 'negara': 'Argentina'}" in details
    await henderson.close()
    for _ in range(50):  # a closed connection leaves the list
        if "henderson" not in await messi.ask("show"):
            break
        await asyncio.sleep(0.05)
    assert "henderson" not in await messi.ask("show")
    await messi.close()


async def test_logout_ends_the_session(node: Node) -> None:
    messi, token = await _login(node, "messi")
    assert await messi.ask("logout") == f"Logout berhasil dilakukan dengan session id :\n{token}"
    assert await messi.ask("send henderson hi") == "Error, not authorized"
    assert await messi.ask("logout") == "Error, not authorized"
    again, _ = await _login(node, "henderson")
    assert "messi" not in await again.ask("show")
    assert re.fullmatch(rf"username messi logged in, token {TOKEN}", await messi.ask("auth messi surabaya"))
    for client in (messi, again):
        await client.close()


async def test_malformed_lines_get_errors_and_the_connection_stays_usable(node: Node) -> None:
    client = await LineClient.open(node)
    assert await client.ask("dance now") == "Error, Protocol Tidak Benar"
    assert (await client.ask(b"auth \xff\xfe x")).startswith("Error, ")
    assert (await client.ask("send")).startswith("Error, ")
    assert (await client.ask("x" * (64 * 1024 + 10))).startswith("Error, lines must be at most 65536 bytes")
    client.writer.write(b"\r\n\n")  # blank lines are no commands: no reply
    reply = await client.ask("auth messi surabaya", b"\n")  # a bare \n ends a line too
    assert reply.startswith("username messi logged in")
    client.writer.write(b"send henderson split ")  # a line may come in pieces
    await client.writer.drain()
    await asyncio.sleep(0.05)
    assert await client.ask("line") == "message sent to henderson"
    assert await client.ask("send henderson " + "x" * 600) == "Error, Messages must be 1 to 500 characters"
    await client.close()


async def test_command_rate_and_login_attempts_are_limited(node: Node) -> None:
    client, _ = await _login(node, "messi")
    for _ in range(15):
        client.writer.write(b"inbox\r\n")
    replies = [await client.read() for _ in range(15)]
    assert "{}" in replies
    assert any(reply.startswith("Error, too many commands") for reply in replies)
    await asyncio.sleep(1.1)
    assert await client.ask("inbox") == "{}"  # usable again after the window
    guesser = await LineClient.open(node)
    replies = []
    for _ in range(6):  # login_attempts_per_user=5 in this module
        replies.append(await guesser.ask("auth henderson guess"))
        await asyncio.sleep(0.11)
    assert replies[:5] == ["Error, Password Salah"] * 5
    assert replies[5] == "Error, too many login attempts; try again in a minute"
    assert (await guesser.ask("auth henderson surabaya")).startswith("Error, too many login attempts")
    for each in (client, guesser):
        await each.close()


def _requests() -> float:
    return REGISTRY.get_sample_value("MessagingRequests_total", {"Protocol": "line"}) or 0.0


@pytest.fixture(params=BACKENDS)
async def reviewed_node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    async with started_node(request, settings, fronts=("line",)) as started:
        await create_account(started.store, "messi", "surabaya", attributes=MESSI)
        await create_account(started.store, "henderson", "surabaya", attributes=HENDERSON)
        yield started


async def test_a_message_through_the_front_is_reviewed_and_counted(reviewed_node: Node) -> None:
    node = reviewed_node
    front = node.fronts["line"]
    room = await front.room.record()  # type: ignore[attr-defined]
    updated = {**room, "review_uri": "parley:blocklist?words=bodoh&reason=kasar", "review_fallback": "DENY"}
    assert await node.store.records.put(RecordKind.ROOM, room["id"], updated, 1)
    await node.bus.fanout.publish_control(ControlNotice(ControlTopic.ROOM_CHANGED, room["id"]).encode())
    await asyncio.sleep(0.2)
    messi, _ = await _login(node, "messi")
    before = _requests()
    assert await messi.ask("send henderson kamu bodoh") == "Error, Message rejected by review: kasar"
    assert await messi.ask("send henderson kamu hebat") == "message sent to henderson"
    assert _requests() - before == 2  # decided by the router like any IVS message
    henderson, _ = await _login(node, "henderson")
    assert json.loads(await henderson.ask("inbox")) == {
        "messi": [{"msg_from": "Lionel Messi", "msg_to": "Jordan Henderson", "msg": " kamu hebat \r\n"}]
    }
    for client in (messi, henderson):
        await client.close()


@pytest.fixture(params=BACKENDS)
async def tight_node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    """At most 2 connections for the account, and a 0.5 s idle timeout."""
    async with started_node(request, settings.with_(max_connections=2, idle_timeout=0.5), fronts=("line",)) as node:
        yield node


async def test_connections_count_in_the_quota_and_idle_ones_are_closed(tight_node: Node) -> None:
    first, second = await LineClient.open(tight_node), await LineClient.open(tight_node)
    third = await LineClient.open(tight_node)
    assert await third.read() == "Error, too many connections; try again later"
    assert await third.reader.read() == b""  # closed
    await first.close()
    await asyncio.sleep(0.1)
    fourth = await LineClient.open(tight_node)  # the slot came back
    assert await fourth.ask("inbox") == "Error, not authorized"
    assert await second.read() == "Error, idle timeout; connection closed"  # said nothing for 0.5 s
    assert await second.reader.read() == b""
    await fourth.close()


async def test_disconnect_and_ban_on_the_line_room_apply_to_line_users(node: Node) -> None:
    messi, _ = await _login(node, "messi")
    messi_id = (await accounts.get_account(node.store.records, "messi")).user_id  # type: ignore[union-attr]
    room = await node.fronts["line"].room.record()  # type: ignore[attr-defined]
    await bans.ban(node.store.marks, room["id"], messi_id, 60_000)  # what BanUser does, then DisconnectUser
    await node.bus.actions.publish(
        ActionEnvelope(Kind.DISCONNECT_USER, new_id(), room["id"], now_ms(), disconnect_user_id=messi_id)
    )
    assert await messi.read() == "Error, disconnected by a moderator"
    assert await messi.reader.read() == b""
    again = await LineClient.open(node)
    assert await again.ask("auth messi surabaya") == "Error, you are banned from this chat"
    await again.close()


async def test_an_ivs_client_and_line_users_meet_in_the_line_room(node: Node) -> None:
    """The line room is a parley room: an IVS client whose userId is an account's gets that
    account's direct messages live, and its direct messages land in a line user's inbox."""
    henderson, _ = await _login(node, "henderson")
    messi_id = (await accounts.get_account(node.store.records, "messi")).user_id  # type: ignore[union-attr]
    henderson_id = (await accounts.get_account(node.store.records, "henderson")).user_id  # type: ignore[union-attr]
    room = Room.from_record(await node.fronts["line"].room.record())  # type: ignore[attr-defined]
    ivs = await ChatClient.open(ws_url(node), mint_token(node, room, messi_id))
    assert await henderson.ask("send messi dari line") == "message sent to messi"
    live = await ivs.expect(Type="MESSAGE")
    assert (live["Content"], live["Recipient"], live["Sender"]["UserId"]) == ("dari line", messi_id, henderson_id)
    assert live["Sender"]["Attributes"]["nama"] == "Jordan Henderson"
    rid = await ivs.send_message("dari ivs", Recipient=henderson_id)
    await ivs.expect(Type="MESSAGE", RequestId=rid)
    assert json.loads(await henderson.ask("inbox")) == {
        messi_id: [{"msg_from": messi_id, "msg_to": "Jordan Henderson", "msg": " dari ivs \r\n"}]
    }  # an IVS sender has no account attributes: its userId stands for the username
    await ivs.close()
    await henderson.close()
