"""Members-only rooms (parley extension): the gateway refuses non-members (403), the router
refuses a removed member's actions (ERROR 403) in order with the removal, RemoveRoomMembers
announces and disconnects; on both backends, and the operations through boto3."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from websockets.exceptions import InvalidStatus

from api.context import ApiContext
from api.members import add_room_members, remove_room_members
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.features import membership
from shared.protocol.envelope import ControlNotice, ControlTopic, Kind
from tests.nodes import make_room as _room
from tests.nodes import mint_token as _token
from tests.nodes import ws_url as _url
from tests.test_bans import parley_client

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]

MOD = ("SEND_MESSAGE", "DISCONNECT_USER")


async def test_members_only_room_refuses_non_members_at_the_handshake(node: Node) -> None:
    room = await _room(node, members_only=True)
    await node.store.members.add(room.id, ["alice"])
    with pytest.raises(InvalidStatus) as refused:
        await ChatClient.open(_url(node), _token(node, room, "mallory"))
    assert refused.value.response.status_code == 403
    alice = await ChatClient.open(_url(node), _token(node, room, "alice"))
    rid = await alice.send_message("members only")
    assert (await alice.expect(Type="MESSAGE", RequestId=rid))["Content"] == "members only"
    await alice.close()
    open_room = await _room(node)  # other rooms are unaffected by member lists
    mallory = await ChatClient.open(_url(node), _token(node, open_room, "mallory"))
    await mallory.close()


async def test_router_refuses_a_removed_members_actions_in_order(node: Node) -> None:
    """The removal reaches the router through the room's shard: actions queued after it are
    refused even though the router's member cache still says "member" and no notice came."""
    room = await _room(node, members_only=True)
    await node.store.members.add(room.id, ["alice", "bob"])
    alice = await ChatClient.open(_url(node), _token(node, room, "alice"))
    bob = await ChatClient.open(_url(node), _token(node, room, "bob"))
    rid = await alice.send_message("before")
    await alice.expect(Type="MESSAGE", RequestId=rid)  # the router cached alice as a member
    await node.store.members.remove(room.id, ["alice"])
    await node.bus.actions.publish(membership.membership_action(room.id, membership.EVENT_MEMBER_REMOVED, "alice"))
    rid = await alice.send_message("after")
    error = await alice.expect(Type="ERROR", RequestId=rid)
    assert error["ErrorCode"] == 403 and "member" in error["ErrorMessage"]
    event = await bob.expect(Type="EVENT")
    assert (event["EventName"], event["Attributes"]) == (membership.EVENT_MEMBER_REMOVED, {"UserId": "alice"})
    rid = await bob.send_message("bob is still a member")
    await bob.expect(Type="MESSAGE", RequestId=rid)
    await bob.drain(0.3)
    assert [f.get("Content") for f in bob.frames if f["Type"] == "MESSAGE"] == ["before", "bob is still a member"]

    # a control notice alone (another api replica's change) also reaches the router's cache
    await node.store.members.remove(room.id, ["bob"])
    await node.bus.fanout.publish_control(ControlNotice(ControlTopic.MEMBERS_CHANGED, room.id).encode())
    await asyncio.sleep(0.3)
    rid = await bob.send_message("refused")
    assert (await bob.expect(Type="ERROR", RequestId=rid))["ErrorCode"] == 403
    alice.ws.transport.abort()
    bob.ws.transport.abort()


async def test_remove_room_members_announces_then_disconnects(node: Node) -> None:
    room = await _room(node, members_only=True)
    ctx = ApiContext(node.settings, node.store, node.bus)
    assert await add_room_members(ctx, {"roomIdentifier": room.arn, "userIds": ["mod", "alice"]}) == {
        "addedUserIds": ["mod", "alice"]
    }
    mod = await ChatClient.open(_url(node), _token(node, room, "mod", caps=MOD))
    alice = await ChatClient.open(_url(node), _token(node, room, "alice"))
    await asyncio.sleep(0.2)
    assert await add_room_members(ctx, {"roomIdentifier": room.arn, "userIds": ["bob", "alice"]}) == {
        "addedUserIds": ["bob"]
    }
    added = await mod.expect(Type="EVENT")
    assert (added["EventName"], added["Attributes"]) == (membership.EVENT_MEMBER_ADDED, {"UserId": "bob"})
    answer = await remove_room_members(ctx, {"roomIdentifier": room.arn, "userIds": ["alice", "nobody"]})
    assert answer == {"removedUserIds": ["alice"]}
    removed = await mod.expect(Type="EVENT")
    assert (removed["EventName"], removed["Attributes"]) == (membership.EVENT_MEMBER_REMOVED, {"UserId": "alice"})
    disconnected = await mod.expect(Type="EVENT")
    assert disconnected["EventName"] == "aws:DISCONNECT_USER" and disconnected["Attributes"]["UserId"] == "alice"
    await asyncio.wait_for(alice.ws.wait_closed(), 5)
    assert alice.ws.close_code == 1000
    with pytest.raises(InvalidStatus):  # and cannot come back
        await ChatClient.open(_url(node), _token(node, room, "alice"))
    await mod.close()


def test_member_operations_through_boto3(api: ApiServer, ivs: Any) -> None:
    parley = parley_client(api)
    room = ivs.create_room(name="club")
    users = [f"user{n:03d}" for n in range(7)]
    assert parley.add_room_members(roomIdentifier=room["arn"], userIds=users)["addedUserIds"] == users
    actions = [api.next_action() for _ in users]
    assert [(a.kind, a.event_name, a.attributes) for a in actions[:1]] == [
        (Kind.MEMBERSHIP, membership.EVENT_MEMBER_ADDED, {"UserId": "user000"})
    ]
    assert [a.user_id for a in actions] == users
    assert ControlNotice(ControlTopic.MEMBERS_CHANGED, room["id"]) in api.notices

    listed, token = [], None
    while True:
        page = parley.list_room_members(
            roomIdentifier=room["arn"], maxResults=3, **({"nextToken": token} if token else {})
        )
        listed += page["userIds"]
        token = page.get("nextToken")
        if not token:
            break
    assert listed == users

    ivs.create_chat_token(roomIdentifier=room["arn"], userId="stranger")  # not members-only yet
    assert parley.update_room_extensions(identifier=room["arn"], membersOnly=True)["membersOnly"] is True
    with pytest.raises(ivs.exceptions.AccessDeniedException):
        ivs.create_chat_token(roomIdentifier=room["arn"], userId="stranger")
    ivs.create_chat_token(roomIdentifier=room["arn"], userId="user003")

    assert parley.remove_room_members(roomIdentifier=room["arn"], userIds=["user003", "ghost"])["removedUserIds"] == [
        "user003"
    ]
    removed, disconnect = api.next_action(), api.next_action()
    assert (removed.kind, removed.event_name, removed.user_id) == (
        Kind.MEMBERSHIP,
        membership.EVENT_MEMBER_REMOVED,
        "user003",
    )
    assert (disconnect.kind, disconnect.disconnect_user_id) == (Kind.DISCONNECT_USER, "user003")
    with pytest.raises(ivs.exceptions.AccessDeniedException):
        ivs.create_chat_token(roomIdentifier=room["arn"], userId="user003")

    status, _, body = api.raw(
        "POST", "/AddRoomMembers", json.dumps({"roomIdentifier": room["arn"], "userIds": []}).encode()
    )
    assert status == 400 and "userIds" in json.dumps(body)  # boto3 itself refuses an empty list
    with pytest.raises(parley.exceptions.ValidationException):
        parley.add_room_members(roomIdentifier=room["arn"], userIds=[f"u{n}" for n in range(101)])
    with pytest.raises(parley.exceptions.ResourceNotFoundException):
        parley.list_room_members(roomIdentifier=room["arn"][:-12] + "abcdefABCDEF")
    ivs.delete_room(identifier=room["arn"])
    assert api.run(api.store.members.page(room["id"], None, 10)) == []  # deleting the room drops its members
