"""The official, unmodified JS client SDK (npm ``amazon-ivs-chat-messaging`` 1.1.1) against parley's gateway.

Each test starts an embedded node (memory store and bus), creates a room in the store, mints chat tokens and runs one
scenario of ``tests/js/sdk_client.mjs`` under Node (``ws`` as the global WebSocket). The script drives the SDK only
through its public API and prints one JSON line per SDK-level observation (listener events, promise settlements,
tokenProvider calls; ``tests/sdk_runner.py`` runs it); the assertions here are on those. Needs ``node`` and ``make js``
(``make test`` runs it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley.embedded import Node
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from tests.nodes import make_room as _room
from tests.nodes import mint_token as _token
from tests.nodes import ws_url
from tests.sdk_runner import MESSAGE_ID, SDK_MARKS, UUID4, assert_sent_recently
from tests.sdk_runner import run as _run

pytestmark = SDK_MARKS

MODERATOR = ("DELETE_MESSAGE", "DISCONNECT_USER")


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), api=False, router_all_shards=True)
    await node.start(gateway_port=0)
    yield node
    await node.stop()


async def test_connect_send_and_receive(node: Node) -> None:
    """(a) connect, (b) sendMessage resolves with the server's message, (c) a second client receives it."""
    room = await _room(node)
    attributes = {"k": "v", "emoji": "ünï👍"}
    run = await _run(
        "chat",
        ws_url(node),
        {"alice": [_token(node, room, "alice")], "bob": [_token(node, room, "bob")]},
        content="hello",
        attributes=attributes,
    )

    # (a) the SDK opened the socket (it aborts when the token is not echoed as the subprotocol): 'connect' fired,
    # with exactly one token used and no disconnect.
    for client in ("alice", "bob"):
        assert run.one(client, "connect")["state"] == "connected", run
        assert len(run.of(client, "tokenFetch")) == 1, run
        # the only disconnect is the script's own room.disconnect() at the end
        assert [line["reason"] for line in run.of(client, "disconnect")] == ["clientDisconnect"], run

    # (b) sendMessage resolved with a ChatMessage built from parley's MESSAGE frame.
    [result] = run.results("alice", "sendMessage")
    assert result["ok"] is True, run
    message = result["value"]
    assert MESSAGE_ID.match(message["id"]), run
    assert message["content"] == "hello" and message["attributes"] == attributes, run
    assert message["requestId"] == result["requestId"] and UUID4.match(result["requestId"]), run
    assert message["sender"] == {"userId": "alice", "attributes": {"displayName": "Alice"}}, run
    assert message["sendTimeType"] == "[object Date]" and message["sendTime"] is not None, run
    assert_sent_recently(message["sendTime"], run)

    # (c) both clients got the 'message' event (the sender gets its own echo), carrying the same ChatMessage.
    for client in ("alice", "bob"):
        [received] = run.of(client, "message")
        assert received["value"] == message, run


async def test_delete_message(node: Node) -> None:
    """(d) deleteMessage resolves; every client gets 'messageDelete' for that message, with the reason."""
    room = await _room(node)
    run = await _run(
        "delete",
        ws_url(node),
        {
            "alice": [_token(node, room, "alice")],
            "bob": [_token(node, room, "bob")],
            "mod": [_token(node, room, "mod", MODERATOR)],
        },
        content="delete me",
        attributes={},
        reason="spam",
    )
    [sent] = run.results("alice", "sendMessage")
    message_id = sent["value"]["id"]

    [result] = run.results("mod", "deleteMessage")
    assert result["ok"] is True, run
    event = result["value"]
    assert event["messageId"] == message_id and event["reason"] == "spam", run
    assert event["requestId"] == result["requestId"], run
    assert MESSAGE_ID.match(event["id"]) and event["id"] != message_id, run  # the event has an Id of its own
    assert event["sendTimeType"] == "[object Date]", run
    assert_sent_recently(event["sendTime"], run)

    for client in ("alice", "bob", "mod"):
        [seen] = run.of(client, "messageDelete")
        assert seen["value"]["id"] == event["id"], run
        assert (seen["value"]["messageId"], seen["value"]["reason"]) == (message_id, "spam"), run


async def test_disconnect_user(node: Node) -> None:
    """(e) disconnectUser resolves; the target gets 'userDisconnect' then 'disconnect'('serverDisconnect') and does not
    reconnect; other clients stay connected."""
    room = await _room(node)
    run = await _run(
        "disconnect",
        ws_url(node),
        {
            "alice": [_token(node, room, "alice")],
            "bob": [_token(node, room, "bob"), _token(node, room, "bob")],  # a spare: a reconnect would use it
            "mod": [_token(node, room, "mod", MODERATOR)],
        },
        reason="be nice",
    )
    [result] = run.results("mod", "disconnectUser")
    assert result["ok"] is True, run
    assert result["value"]["userId"] == "bob" and result["value"]["reason"] == "be nice", run
    assert result["value"]["requestId"] == result["requestId"], run

    user_disconnect = run.one("bob", "userDisconnect")
    assert user_disconnect["value"]["userId"] == "bob" and user_disconnect["value"]["reason"] == "be nice", run
    disconnect = run.one("bob", "disconnect")
    assert disconnect["reason"] == "serverDisconnect", run
    assert run.index(user_disconnect) < run.index(disconnect), run
    final = run.one("bob", "final")
    assert final["state"] == "disconnected" and final["fetches"] == 1, run  # no reconnect attempt
    assert len(run.of("bob", "connect")) == 1 and len(run.of("bob", "connecting")) == 1, run

    # Others see the event too and keep their connection.
    assert run.one("alice", "userDisconnect")["value"]["userId"] == "bob", run
    assert run.one("alice", "final") == {"client": "alice", "event": "final", "state": "connected", "fetches": 1}, run


async def test_request_errors_reject_with_chat_error(node: Node) -> None:
    """(f) over the room's maximumMessageLength → ChatError 400; without SEND_MESSAGE → ChatError 403."""
    room = await _room(node, maximum_message_length=10)
    run = await _run(
        "errors",
        ws_url(node),
        {"alice": [_token(node, room, "alice")], "mute": [_token(node, room, "mute", ())]},
        long="x" * 11,
        short="short",
    )
    too_long, short = run.results("alice", "sendMessage")
    assert too_long["ok"] is False, run
    error = too_long["error"]
    assert "thrown" not in error, run  # a ChatError from an ERROR frame, not an SDK exception
    assert error.get("errorCode") == 400 and isinstance(error.get("errorMessage"), str), run
    assert error.get("requestId") == too_long["requestId"] and isinstance(error.get("id"), str), run

    assert short["ok"] is True and short["value"]["content"] == "short", run  # the connection survived

    [forbidden] = run.results("mute", "sendMessage")
    assert forbidden["ok"] is False, run
    error = forbidden["error"]
    assert error.get("errorCode") == 403 and error.get("requestId") == forbidden["requestId"], run
    assert isinstance(error.get("errorMessage"), str), run

    # Errors went only to the requester, and neither client reconnected (no 401 was sent).
    assert [line["value"]["content"] for line in run.of("mute", "message")] == ["short"], run
    for client in ("alice", "mute"):
        assert run.one(client, "final")["state"] == "connected" and run.one(client, "final")["fetches"] == 1, run


async def test_invalid_token_ends_in_socket_error(node: Node) -> None:
    """(g) a forged token is refused at the handshake; the SDK fetches a new token and retries (3 times by default),
    then reports disconnect('socketError')."""
    room = await _room(node)
    forged = []
    for _ in range(10):  # well-formed tokens for this room whose signature is wrong
        body, signature = _token(node, room, "eve").split(".")
        forged.append(f"{body}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}")
    run = await _run("badtoken", ws_url(node), {"eve": forged})

    assert not run.of("eve", "connect"), run
    assert run.one("eve", "disconnect")["reason"] == "socketError", run
    assert run.one("eve", "final") == {"client": "eve", "event": "final", "state": "disconnected", "fetches": 4}, run
